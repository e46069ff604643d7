"""The read cache seen from a route: ``cached_json_async``.

A route resolves authorization first (its dependency: ``auth.deps.TenantReadDep`` or
``StaffReadDep``), then calls ``cached_json_async`` (usually through the dependency's
``cached_json``) with the resource name, the scope (``tenant_scope(id)`` or ``PLATFORM_SCOPE``),
the *validated* parameters that change the answer, the response model and a function that
computes the answer. The encoded body is what is cached, so a HIT returns the same bytes as the
MISS that stored it. Every such response carries ``X-Cache: HIT|MISS`` (true) and
``Cache-Control: private, max-age=<ttl>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from alquimista_ops.core.cache import Cache, CacheKey
from alquimista_ops.core.deps import read_db, read_gate, run_read
from alquimista_ops.core.response_memo import note_cached_value

T = TypeVar("T")


async def cached_json_async(
    cache: Cache,
    engine: Engine,
    resource: str,
    scope: str,
    params: Mapping[str, object] | None,
    model: type[BaseModel],
    compute: Callable[[Connection], Mapping[str, Any]],
    *,
    exclude_unset: bool = False,
) -> Response:
    """The cached JSON answer of a read route. A HIT is answered on the event loop (from this
    process's local copies, else Redis); a miss (and any cache trouble) goes to the thread pool
    once: single flight, ``compute(conn)`` on a read connection (``core.deps.read_db``), store."""
    key = CacheKey.build(resource, scope, params)

    def encode(data: Mapping[str, Any]) -> bytes:
        answer = model.model_validate(data)
        return answer.model_dump_json(by_alias=True, exclude_unset=exclude_unset).encode()

    body, hit = await cached_value(cache, engine, key, compute, encode)
    return _response(body, hit, key)


async def cached_value(
    cache: Cache,
    engine: Engine,
    key: CacheKey,
    compute: Callable[[Connection], T],
    encode: Callable[[T], bytes],
) -> tuple[bytes, bool]:
    """``(value, hit)`` of ``key``: a HIT on the event loop; else ``encode(compute(conn))``
    on a read connection (``core.deps.read_db``), stored (single flight) and noted for the
    response memo (``core.response_memo``).

    With the cache off, ``encode`` (validating and serializing the answer) runs after the
    read has given its connection back: the next request's statements then run while this
    one is encoded, instead of waiting behind it (one read at a time per worker when
    PostgreSQL is local, ``core.db.read_concurrency``)."""
    found = await cache.aget(key)
    if found is not None:
        value, hit = found, True
    elif cache.backend is None:  # the cache is off: computed (and counted) after the read
        data = await read_db(engine, compute)
        value, hit = cache.get_or_compute(key, lambda: encode(data))
    else:
        async with read_gate(engine):  # one flight per key, in the thread pool
            value, hit = await run_in_threadpool(
                cache.get_or_compute, key, lambda: encode(run_read(engine, compute))
            )
    note_cached_value(cache, key, value)
    return value, hit


def _response(body: bytes, hit: bool, key: CacheKey) -> Response:
    return Response(
        content=body,
        media_type="application/json",
        headers={
            "X-Cache": "HIT" if hit else "MISS",
            "Cache-Control": f"private, max-age={key.ttl}",
            "Vary": "Authorization",
        },
    )
