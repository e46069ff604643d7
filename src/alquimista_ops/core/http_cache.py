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

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from alquimista_ops.core.answers import encoder
from alquimista_ops.core.cache import Cache, CacheKey
from alquimista_ops.core.response_memo import note_cached_value

T = TypeVar("T")


async def cached_json(
    cache: Cache,
    resource: str,
    scope: str,
    params: Mapping[str, object] | None,
    model: type[BaseModel],
    compute: Callable[[], Awaitable[Mapping[str, Any]]],
    *,
    exclude_unset: bool = False,
) -> Response:
    """The cached JSON answer of a read route: ``compute()`` validated and encoded by
    ``model`` (``core.answers.encoder``) on a miss, the stored bytes on a HIT."""
    key = CacheKey.build(resource, scope, params)
    encode, _fast = encoder(model, exclude_unset)
    body, hit = await cached_value(cache, key, compute, encode)
    return _response(body, hit, key)


async def cached_value(
    cache: Cache,
    key: CacheKey,
    compute: Callable[[], Awaitable[T]],
    encode: Callable[[T], bytes],
) -> tuple[bytes, bool]:
    """``(value, hit)`` of ``key``: a HIT is answered on the event loop (this process's local
    copies, else Redis); a miss runs ``compute()`` once per key at a time in this event loop
    (``_computed_once``), encodes it and stores it from a thread, and the value is noted for
    the response memo (``core.response_memo``). ``compute`` is expected to give its database
    connection back when it returns, so ``encode`` runs while the next request reads."""
    if cache.backend is None:  # the cache is off
        value = encode(await compute())
        cache.stats["misses"] += 1
        return value, False
    found, generation = await cache.alookup(key)
    if found is not None:
        note_cached_value(cache, key, found)
        return found, True

    async def computed() -> bytes:
        value = encode(await compute())
        await run_in_threadpool(cache.store, key, value, generation)
        return value

    value = await _computed_once(key.render(cache.namespace), computed)
    note_cached_value(cache, key, value)
    return value, False


_flights: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Future[bytes]]]
_flights = weakref.WeakKeyDictionary()


async def _computed_once(full_key: str, compute: Callable[[], Awaitable[bytes]]) -> bytes:
    """``compute()``, or the result of the one already running for ``full_key`` on this
    event loop (a burst of misses of one key, after an invalidation say, reads it once). A
    failure reaches every waiter; when the request computing it is cancelled (its client
    went away), a waiter computes it itself."""
    flights = _flights.setdefault(asyncio.get_running_loop(), {})
    while (running := flights.get(full_key)) is not None:
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            if not running.cancelled():
                raise  # this request was cancelled, not the one computing
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    future.add_done_callback(_retrieved)
    flights[full_key] = future
    try:
        value = await compute()
    except Exception as exc:
        future.set_exception(exc)
        raise
    except BaseException:
        future.cancel()
        raise
    finally:
        flights.pop(full_key, None)
    future.set_result(value)
    return value


def _retrieved(future: asyncio.Future[bytes]) -> None:
    """Mark a failure as seen (asyncio logs an exception no waiter retrieved)."""
    if not future.cancelled():
        future.exception()


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
