"""Rate limiting per authenticated user and per client address.

Fixed windows (``RATE_LIMIT_WINDOW_SECONDS``): one counter per (user, window) and per
(address, window). With Redis configured the counters live in Redis, so every process of the
deployment shares them; otherwise, and while Redis is unavailable (circuit breaker, as for the
cache), they are counted in-process. Over the limit the request is answered ``429`` with
``Retry-After`` and the JSON error body.

With Redis, a process does not ask Redis on every request (profiled: that round trip was a
large part of a cached read). It takes a *lease*: ``INCRBY counter n`` reserves ``n`` requests
of the window at once (an eighth of what is left of the limit, at most ``LEASE_MAX``), admits
them locally, and asks again when they are used up. Redis only ever grants what is below the
limit, so all processes together never admit more than the limit; near the limit leases shrink
to one request, so the count is exact where it matters. Requests reserved but not used by a
process before the window ends are the only error, and only ever on the strict side.

``RATE_LIMIT_ENABLED=false`` turns it off; a limit of 0 turns that one dimension off.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from starlette.types import ASGIApp, Receive, Scope, Send

from alquimista_ops.core.cache import REDIS_ERRORS, AsyncTwin, CircuitBreaker
from alquimista_ops.core.errors import error_body
from alquimista_ops.core.settings import Settings

log = logging.getLogger(__name__)

EXEMPT_PATHS = frozenset({"/health", "/ready"})


# A lease reserves at most 1/LEASE_SHARE of what is left of a limit, and at most LEASE_MAX.
LEASE_SHARE = 8
LEASE_MAX = 100
LEASE_ATTEMPTS = 4


@dataclass(slots=True)
class _Lease:
    tokens: int = 0  # requests this process may still admit without asking Redis
    seen: int = 0  # the shared count after this process's last reservation
    exhausted: bool = False  # Redis granted nothing: the limit is reached for this window


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    scope: str = ""
    limit: int = 0
    retry_after: int = 0


class RateLimiter:
    def __init__(
        self,
        *,
        namespace: str,
        per_user: int,
        per_address: int,
        window_seconds: int,
        client: redis.Redis | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.namespace = namespace
        self.per_user = per_user
        self.per_address = per_address
        self.window = window_seconds
        self.client = client
        self.breaker = breaker or CircuitBreaker(5.0)
        self._local: dict[str, int] = {}
        self._local_window = -1
        self._leases: dict[str, _Lease] = {}
        self._lease_window = -1
        self._lock = threading.Lock()
        self._async = AsyncTwin(client) if client is not None else None

    @property
    def backend_name(self) -> str:
        return "redis" if self.client is not None else "memory"

    async def acheck(
        self, user: str | None, address: str | None, now: float | None = None
    ) -> Verdict:
        """The verdict for one request of ``user`` from ``address``. With Redis, from this
        process's leases (a refill's round trip is awaited); else counted in-process."""
        now = time.time() if now is None else now
        window, retry_after, checks, keys = self._plan(user, address, now)
        if not checks:
            return Verdict(True)
        client = self._async.get() if self._async is not None else None
        for _attempt in range(LEASE_ATTEMPTS):
            if client is None or not self.breaker.allow():
                break
            verdict = self._take(checks, keys, window, retry_after)
            if verdict is not None:
                return verdict
            refills = self._refills(checks, keys, window)
            try:
                pipe = client.pipeline(transaction=False)
                self._queue(pipe, refills)
                counts = await pipe.execute()
            except REDIS_ERRORS as exc:
                self._redis_failed(exc)
                break
            self.breaker.success()
            self._refill(refills, counts)
        else:
            return Verdict(True)  # leases kept being taken by others: let this one through
        return self._verdict(checks, self._local_incr(keys, window), retry_after)

    # -- leases (Redis) ------------------------------------------------------------------------
    def _take(
        self, checks: list[tuple[str, str, int]], keys: list[str], window: int, retry_after: int
    ) -> Verdict | None:
        """Admit (one request from every lease) or refuse (a limit is reached) locally; None
        when a lease must be refilled first."""
        with self._lock:
            if window != self._lease_window:
                self._leases.clear()
                self._lease_window = window
            leases = []
            for (kind, _ident, limit), key in zip(checks, keys, strict=True):
                lease = self._leases.get(key)
                if lease is None:
                    return None
                if lease.exhausted:
                    return Verdict(False, kind, limit, retry_after)
                if lease.tokens <= 0:
                    return None
                leases.append(lease)
            for lease in leases:
                lease.tokens -= 1
            return Verdict(True)

    def _refills(
        self, checks: list[tuple[str, str, int]], keys: list[str], window: int
    ) -> list[tuple[_Lease, str, int, int]]:
        """(lease, key, limit, requests to reserve) of every lease that is empty."""
        refills = []
        with self._lock:
            for (_kind, _ident, limit), key in zip(checks, keys, strict=True):
                lease = self._leases.get(key)
                if lease is None:
                    lease = self._leases[key] = _Lease()
                if lease.tokens > 0 or lease.exhausted:
                    continue
                size = max(1, min(LEASE_MAX, (limit - lease.seen) // LEASE_SHARE))
                refills.append((lease, key, limit, size))
        return refills

    def _queue(self, pipe: Any, refills: list[tuple[_Lease, str, int, int]]) -> None:
        for _lease, key, _limit, size in refills:
            pipe.incrby(key, size)
            pipe.expire(key, self.window + 1)

    def _refill(self, refills: list[tuple[_Lease, str, int, int]], results: list[Any]) -> None:
        with self._lock:
            for i, (lease, _key, limit, size) in enumerate(refills):
                count = int(results[i * 2])
                granted = max(0, min(size, limit - (count - size)))
                lease.seen = count
                lease.tokens += granted
                if granted == 0:
                    lease.exhausted = True

    def _plan(
        self, user: str | None, address: str | None, now: float
    ) -> tuple[int, int, list[tuple[str, str, int]], list[str]]:
        window = int(now // self.window)
        retry_after = max(1, math.ceil((window + 1) * self.window - now))
        checks: list[tuple[str, str, int]] = []
        if user and self.per_user > 0:
            checks.append(("user", user, self.per_user))
        if address and self.per_address > 0:
            checks.append(("address", address, self.per_address))
        keys = [f"{self.namespace}:ratelimit:{kind}:{ident}:{window}" for kind, ident, _ in checks]
        return window, retry_after, checks, keys

    @staticmethod
    def _verdict(
        checks: list[tuple[str, str, int]], counts: list[int], retry_after: int
    ) -> Verdict:
        for (kind, _ident, limit), count in zip(checks, counts, strict=True):
            if count > limit:
                return Verdict(False, kind, limit, retry_after)
        return Verdict(True)

    def _redis_failed(self, exc: BaseException) -> None:
        if self.breaker.failure():
            log.warning(
                "rate limiter: Redis unavailable, counting in-process",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )

    def _local_incr(self, keys: list[str], window: int) -> list[int]:
        with self._lock:
            if window != self._local_window:
                self._local.clear()
                self._local_window = window
            counts = []
            for key in keys:
                self._local[key] = self._local.get(key, 0) + 1
                counts.append(self._local[key])
            return counts


def build_rate_limiter(settings: Settings, client: redis.Redis | None) -> RateLimiter | None:
    if not settings.rate_limit_enabled:
        return None
    if client is None and settings.resolved_redis_url:
        from alquimista_ops.core.cache import redis_client

        client = redis_client(settings.resolved_redis_url, settings.cache_timeout_ms)
    return RateLimiter(
        namespace=f"{settings.cache_prefix}:{settings.env}",
        per_user=settings.rate_limit_per_user,
        per_address=settings.rate_limit_per_address,
        window_seconds=settings.rate_limit_window_seconds,
        client=client,
        breaker=CircuitBreaker(settings.cache_backoff_seconds),
    )


class RateLimitMiddleware:
    """Applies ``runtime.rate_limiter`` (if any) to every HTTP request but health probes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        limiter: RateLimiter | None = runtime.rate_limiter
        if limiter is None:
            await self.app(scope, receive, send)
            return
        headers = {
            k: v for k, v in scope.get("headers", []) if k in (b"authorization", b"x-forwarded-for")
        }
        address = _client_address(scope, headers, runtime.settings.trust_forwarded_for)
        bearer = runtime.verifier.cached_bearer(scope)
        if bearer is not None:
            user: str | None = str(bearer[1].sub)
        else:
            user = _user_of(runtime, headers.get(b"authorization"))
        verdict = await limiter.acheck(user, address)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            error_body(
                "RATE_LIMITED",
                "Too many requests; retry later",
                {
                    "scope": verdict.scope,
                    "limit": verdict.limit,
                    "window_seconds": limiter.window,
                    "retry_after": verdict.retry_after,
                },
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(verdict.retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _client_address(scope: Scope, headers: dict[bytes, bytes], trust_forwarded: bool) -> str | None:
    if trust_forwarded and b"x-forwarded-for" in headers:
        first = headers[b"x-forwarded-for"].decode("latin-1").split(",")[0].strip()
        if first:
            return first[:64]
    client = scope.get("client")
    return str(client[0]) if client else None


def _user_of(runtime: object, authorization: bytes | None) -> str | None:
    """The verified ``sub`` of a bearer token (an unverifiable token counts per address only)."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    verifier = runtime.verifier  # type: ignore[attr-defined]
    try:
        # the verified-token cache makes this (and the route's own check) a look-up.
        principal = verifier.cached(token.strip()) or verifier.verify(token.strip())
    except Exception:
        return None
    return str(principal.sub)
