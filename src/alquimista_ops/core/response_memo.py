"""Answers of cached reads remembered per bearer token and URL, served before routing.

Once the read cache answered from this process's local copies (no round trip at all), most of a
cached read's time was the framework's routing, parameter validation and dependency resolution
(profiled). So the HTTP layer remembers the last 200 answer of each (token, path, query string)
whose body came from the read cache, with the local copies it was built on: the resource's
value and, for ``/tenant/*`` reads, the tenant's status. A later GET with the same bearer token,
path and query string is answered without entering the router when:

- the token is in the verified-token cache (valid, not expired): same principal, groups and
  tenant claim, so the same authorization the route checked;
- every local copy the answer was built on is still the very same object in the cache's local
  copies. Any invalidation (commands, rollups, ingestion, suspension), the copies' expiry
  (``CACHE_LOCAL_SECONDS``) or a lost invalidation channel drops those copies, and with them
  every answer built on them.

Rate limiting, request ids, security headers, the access log and metrics apply as to any
request: the memo sits inside those middlewares. Only bearer-token GETs are remembered (the
web pages' cookie requests take the normal path).
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alquimista_ops.core.cache import Cache, CacheKey

# (full cache key, value) of every local copy the current request's answer was built on
_built_on: contextvars.ContextVar[list[tuple[str, bytes]] | None] = contextvars.ContextVar(
    "response_memo_built_on", default=None
)


def note_cached_value(cache: Cache, key: CacheKey, value: bytes) -> None:
    """Called by the read cache's users for every value an answer is built on."""
    built_on = _built_on.get()
    if built_on is not None:
        built_on.append((key.render(cache.namespace), value))


@dataclass(frozen=True, slots=True)
class _Entry:
    headers: list[tuple[bytes, bytes]]
    body: bytes
    built_on: tuple[tuple[str, bytes], ...]
    route: Any
    log_state: tuple[tuple[str, Any], ...]
    expires: float  # when the local copies it was built on expire at the latest

    def current(self, cache: Cache) -> bool:
        return all(cache.local_copy(full) is value for full, value in self.built_on)


class ResponseMemoMiddleware:
    """The memo of one process. An entry keeps its body alive, so entries are dropped once the
    local copies they were built on have expired (``CACHE_LOCAL_SECONDS``), oldest first as new
    ones arrive, and their bodies never add up to more than half the local copies' budget
    (``CACHE_LOCAL_MAX_MB``; a soak over thousands of distinct URLs grew a worker by 70 MB in
    90 s before these bounds)."""

    def __init__(self, app: ASGIApp, max_entries: int = 10_000) -> None:
        self.app = app
        self.max_entries = max_entries
        self._entries: dict[tuple[bytes, str, bytes], _Entry] = {}
        self._bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        cache: Cache = runtime.cache
        bearer = runtime.verifier.cached_bearer(scope) if cache.local is not None else None
        if bearer is None:
            await self.app(scope, receive, send)
            return
        state = scope["state"]
        key = (bearer[0], scope["path"], scope["query_string"])
        entry = self._entries.get(key)
        if entry is not None and not entry.current(cache):
            self._drop(key)
            entry = None
        if entry is not None:
            scope["route"] = entry.route  # the metrics' route label
            state.update(entry.log_state)  # the access log's tenant and user
            cache.stats["hits"] += 1
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            await send({"type": "http.response.body", "body": entry.body})
            return
        built_on: list[tuple[str, bytes]] = []
        token = _built_on.set(built_on)
        status = 0
        headers: list[tuple[bytes, bytes]] = []

        async def remember(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                # copied now: the outer middlewares add this request's own headers to it
                status, headers = message["status"], list(message.get("headers", []))
            elif (
                status == 200
                and not message.get("more_body")
                and any(value is message.get("body") for _full, value in built_on)
            ):
                self._remember(cache, key, headers, message["body"], built_on, scope)
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            _built_on.reset(token)

    def _remember(
        self,
        cache: Cache,
        key: tuple[bytes, str, bytes],
        response_headers: list[tuple[bytes, bytes]],
        body: bytes,
        built_on: list[tuple[str, bytes]],
        scope: Scope,
    ) -> None:
        local = cache.local
        if local is None or len(body) > local.max_bytes // 4:
            return
        headers = [(k, v) for k, v in response_headers if k.lower() != b"x-cache"]
        headers.append((b"x-cache", b"HIT"))
        state = scope.get("state") or {}
        log_state = tuple((k, state[k]) for k in ("tenant_id", "user_sub") if k in state)
        now = time.monotonic()
        self._drop(key)
        entry = _Entry(
            headers, body, tuple(built_on), scope.get("route"), log_state, now + local.seconds
        )
        if not entry.current(cache):  # e.g. the copies were not kept (an invalidation arrived)
            return
        self._entries[key] = entry
        self._bytes += len(body)
        # entries are in insertion order, so the expired and the oldest are at the front
        while self._entries:
            oldest_key = next(iter(self._entries))
            oldest = self._entries[oldest_key]
            if (
                oldest.expires > now
                and len(self._entries) <= self.max_entries
                and self._bytes <= local.max_bytes // 2
            ):
                break
            self._drop(oldest_key)

    def _drop(self, key: tuple[bytes, str, bytes]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry.body)

    def __len__(self) -> int:
        return len(self._entries)
