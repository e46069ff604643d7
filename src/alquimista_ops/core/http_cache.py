"""The read cache seen from a route: ``CacheDep`` and ``cached_json``.

A route resolves authorization first (its dependencies: principal, tenant scope), then calls
``cached_json`` with the resource name, the scope (``tenant_scope(id)`` or ``PLATFORM_SCOPE``),
the *validated* parameters that change the answer, the response model and a function that
computes the answer. The encoded body is what is cached, so a HIT returns the same bytes as the
MISS that stored it. Every such response carries ``X-Cache: HIT|MISS`` (true) and
``Cache-Control: private, max-age=<ttl>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from alquimista_ops.core.cache import Cache, CacheKey
from alquimista_ops.core.deps import RuntimeDep


async def get_cache(runtime: RuntimeDep) -> Cache:
    return runtime.cache


CacheDep = Annotated[Cache, Depends(get_cache)]


def cached_json(
    cache: Cache,
    resource: str,
    scope: str,
    params: Mapping[str, object] | None,
    model: type[BaseModel],
    compute: Callable[[], Mapping[str, Any]],
    *,
    exclude_unset: bool = False,
) -> Response:
    key = CacheKey.build(resource, scope, params)

    def produce() -> bytes:
        data = model.model_validate(compute())
        return data.model_dump_json(by_alias=True, exclude_unset=exclude_unset).encode()

    body, hit = cache.get_or_compute(key, produce)
    return _response(body, hit, key)


async def cached_json_async(
    cache: Cache,
    resource: str,
    scope: str,
    params: Mapping[str, object] | None,
    model: type[BaseModel],
    compute: Callable[[], Mapping[str, Any]],
    *,
    exclude_unset: bool = False,
) -> Response:
    """``cached_json`` for async routes: a HIT is answered on the event loop; a miss (and any
    cache trouble) goes through ``cached_json`` in the thread pool (single flight, store)."""
    key = CacheKey.build(resource, scope, params)
    body = await cache.aget(key)
    if body is not None:
        return _response(body, True, key)
    return await run_in_threadpool(
        cached_json, cache, resource, scope, params, model, compute, exclude_unset=exclude_unset
    )


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
