"""The read cache (PRODUCT.md §5): Redis when configured, in-process otherwise.

One small interface is used everywhere:

- ``Cache.get_or_compute(key, compute)`` returns ``(body_bytes, hit)``. Values are encoded
  response bodies (bytes), so a HIT returns exactly what the MISS returned.
- Keys are ``<prefix>:<env>:<resource>:<scope>:<params>`` (``CacheKey``); the scope is
  ``tenant:<uuid>`` or ``platform``. The TTL comes from the resource (``TTLS``).
- Invalidation: ``invalidate_tenant(tenant_id)``, ``invalidate_usage(tenant_ids | None)``,
  ``invalidate_resource(resource)`` and ``invalidate_all()``. Writes that change what a key shows
  (commands, ingestion, aggregation) call them *after* their transaction committed.

Redis is used with short socket timeouts. A failing or slow Redis opens a circuit breaker: for a
back-off period (doubling on repeated failures) requests skip Redis entirely and are computed from
the database (``X-Cache: MISS``), a warning is logged once per opening, and nothing fails. A
failed invalidation is remembered and, once Redis answers again, the whole namespace of the
environment is flushed before any read is served from it (stale values never outlive an outage).

Concurrent misses on one key compute it once per process (single flight).

In front of Redis each process keeps *local copies* of the values it read or stored, for at most
``CACHE_LOCAL_SECONDS`` (``LocalCopies``): a HIT then costs no round trip (profiled: the Redis
round trip was most of a cached read). Every invalidation is applied to this process's copies at
once and published on a Redis channel; every process listens on it (``InvalidationListener``)
and drops its matching copies. Local copies are only used while the listener is subscribed (a
lost connection empties them), so a copy never outlives an invalidation by more than the
channel's delivery time, and never outlives ``CACHE_LOCAL_SECONDS`` at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis

from alquimista_ops.core.settings import Settings

log = logging.getLogger(__name__)

# TTL (seconds) of each cached resource (PRODUCT.md §5).
TTLS: dict[str, int] = {
    # the tenant's status, read by every /tenant/* request (suspension check)
    "tenant_status": 60,
    "tenant_me": 300,
    "tenant_agents": 300,
    "tenant_integrations": 300,
    "tenant_usage": 600,
    "tenant_incidents": 180,
    "tenants_list": 300,
    "tenant_detail": 300,
    "tenant_agents_internal": 300,
    "usage_overview": 600,
    "billing_overview": 900,
}
# Resources whose figures come from the usage rollup (invalidated by ``invalidate_usage``).
USAGE_RESOURCES = frozenset(
    {
        "tenant_me",
        "tenant_agents",
        "tenant_usage",
        "tenants_list",
        "tenant_detail",
        "tenant_agents_internal",
        "usage_overview",
    }
)
# Platform-wide resources that show every tenant (invalidated with any tenant's change).
PLATFORM_RESOURCES = frozenset({"tenants_list", "usage_overview", "billing_overview"})

PLATFORM_SCOPE = "platform"
MAX_PARAMS_LENGTH = 120


def tenant_scope(tenant_id: uuid.UUID | str) -> str:
    return f"tenant:{tenant_id}"


@dataclass(frozen=True, slots=True)
class CacheKey:
    resource: str
    scope: str
    params: str

    @classmethod
    def build(
        cls, resource: str, scope: str, params: Mapping[str, object] | None = None
    ) -> CacheKey:
        if resource not in TTLS:
            raise ValueError(f"unknown cache resource {resource!r}")
        items = sorted((k, "" if v is None else str(v)) for k, v in (params or {}).items())
        text = "&".join(f"{k}={v}" for k, v in items) or "-"
        if len(text) > MAX_PARAMS_LENGTH or ":" in text:
            text = "h" + hashlib.sha256(text.encode()).hexdigest()[:32]
        return cls(resource, scope, text)

    @property
    def ttl(self) -> int:
        return TTLS[self.resource]

    def render(self, namespace: str) -> str:
        return f"{namespace}:{self.resource}:{self.scope}:{self.params}"


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What an invalidation removes: keys of these scopes, keys of these resources, or
    everything (``everything``); with ``usage_only`` only keys of ``USAGE_RESOURCES``."""

    scopes: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    usage_only: bool = False
    everything: bool = False

    def matches(self, key: CacheKey) -> bool:
        if self.everything:
            return True
        if key.scope not in self.scopes and key.resource not in self.resources:
            return False
        return not self.usage_only or key.resource in USAGE_RESOURCES

    def indexes(self, namespace: str) -> list[str]:
        """The Redis/memory index sets that list the keys this invalidation removes."""
        return [f"{namespace}:idx:{scope}" for scope in sorted(self.scopes)] + [
            f"{namespace}:idx:resource:{resource}" for resource in sorted(self.resources)
        ]

    def keep(self, namespace: str) -> Callable[[str], bool] | None:
        """For ``usage_only``: which of the indexed keys stay (those of other resources)."""
        if not self.usage_only:
            return None
        prefix = f"{namespace}:"

        def keep(full_key: str) -> bool:
            resource = full_key[len(prefix) :].split(":", 1)[0]
            return resource not in USAGE_RESOURCES

        return keep

    def to_message(self) -> str:
        return json.dumps(
            {
                "scopes": sorted(self.scopes),
                "resources": sorted(self.resources),
                "usage_only": self.usage_only,
                "everything": self.everything,
            }
        )

    @classmethod
    def from_message(cls, data: bytes | str) -> Invalidation:
        """A published invalidation; anything unreadable means "everything" (safe side)."""
        try:
            fields = json.loads(data)
            return cls(
                scopes=frozenset(str(s) for s in fields["scopes"]),
                resources=frozenset(str(r) for r in fields["resources"]),
                usage_only=bool(fields["usage_only"]),
                everything=bool(fields["everything"]),
            )
        except (ValueError, KeyError, TypeError):
            return cls(everything=True)


class LocalCopies:
    """This process's copies of values read from (or stored into) Redis, each kept at most
    ``seconds`` and within ``max_bytes`` in all (oldest first out).

    ``generation`` changes with every invalidation applied here. A reader takes it *before*
    its Redis GET and stores the value only if it has not changed since: a value read just
    before another process's invalidation arrived is never kept.
    """

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.generation = 0
        self.active = False  # True while the invalidation listener is subscribed
        self._entries: dict[str, tuple[float, bytes, CacheKey]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, full: str) -> bytes | None:
        if not self.active:
            return None
        entry = self._entries.get(full)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, full: str, key: CacheKey, value: bytes, generation: int) -> None:
        size = len(value)
        if not self.active or size > self.max_bytes // 4:
            return
        expires = time.monotonic() + min(self.seconds, key.ttl)
        with self._lock:
            if generation != self.generation or not self.active:
                return
            old = self._entries.pop(full, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[full] = (expires, value, key)
            self._bytes += size
            # oldest first: over the budget, or expired (so memory follows recent use)
            now = time.monotonic()
            while self._entries:
                oldest = next(iter(self._entries))
                entry = self._entries[oldest]
                if self._bytes <= self.max_bytes and entry[0] > now:
                    break
                self._bytes -= len(self._entries.pop(oldest)[1])

    def apply(self, invalidation: Invalidation) -> None:
        with self._lock:
            self.generation += 1
            if invalidation.everything:
                self._entries.clear()
                self._bytes = 0
                return
            for full, (_expires, value, key) in list(self._entries.items()):
                if invalidation.matches(key):
                    del self._entries[full]
                    self._bytes -= len(value)

    def set_active(self, active: bool) -> None:
        """Start (subscribed) or stop (connection lost) serving copies; both empty them."""
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._bytes = 0
            self.active = active

    def __len__(self) -> int:
        return len(self._entries)


class InvalidationListener:
    """A daemon thread subscribed to the namespace's invalidation channel: it applies every
    invalidation published by any process to ``copies``, and switches the copies off while it
    is not subscribed (Redis down: reconnects with the cache's back-off)."""

    def __init__(
        self, client: redis.Redis, channel: str, copies: LocalCopies, retry_seconds: float
    ) -> None:
        self.client = client
        self.channel = channel
        self.copies = copies
        self.retry_seconds = max(retry_seconds, 0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cache-invalidations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        self.copies.set_active(True)
                    elif message["type"] == "message":
                        self.copies.apply(Invalidation.from_message(message["data"]))
            except REDIS_ERRORS as exc:
                if self.copies.active:
                    log.warning(
                        "cache invalidation channel lost; local copies off until it is back",
                        extra={"error": f"{type(exc).__name__}"},
                    )
                self.copies.set_active(False)
                self._stop.wait(self.retry_seconds)
            finally:
                self.copies.set_active(False)
                with contextlib.suppress(*REDIS_ERRORS):
                    pubsub.close()


class Backend(Protocol):
    name: str

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: int, indexes: Iterable[str]) -> None: ...

    def delete_indexes(self, indexes: Iterable[str], keep: Callable[[str], bool] | None) -> int: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def ping(self) -> None: ...


class MemoryBackend:
    """In-process LRU with TTLs and the same index structure as the Redis backend.

    Processes on one machine (the server and a CLI job such as ``alquimista-ops aggregate``)
    share an *epoch file*: every invalidation rewrites it, and a process that sees it changed
    (checked at most every ``EPOCH_CHECK_SECONDS``) empties its own cache. So an invalidation
    made by another process reaches this one within that interval, without Redis.
    """

    name = "memory"
    EPOCH_CHECK_SECONDS = 0.5

    def __init__(self, max_entries: int = 10_000, epoch_file: Path | None = None) -> None:
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._indexes: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._max = max_entries
        self._epoch_file = epoch_file
        self._epoch_seen = self._read_epoch()
        self._epoch_checked = time.monotonic()

    def _read_epoch(self) -> int:
        if self._epoch_file is None:
            return 0
        try:
            return self._epoch_file.stat().st_mtime_ns
        except OSError:
            return 0

    def _sync_epoch(self) -> None:
        """Empty this process's cache when another process invalidated (lock held)."""
        now = time.monotonic()
        if self._epoch_file is None or now - self._epoch_checked < self.EPOCH_CHECK_SECONDS:
            return
        self._epoch_checked = now
        epoch = self._read_epoch()
        if epoch != self._epoch_seen:
            self._epoch_seen = epoch
            self._data.clear()
            self._indexes.clear()

    def _bump_epoch(self) -> None:
        if self._epoch_file is None:
            return
        try:
            self._epoch_file.parent.mkdir(parents=True, exist_ok=True)
            self._epoch_file.write_text(str(time.time_ns()))
        except OSError as exc:
            log.warning("cache epoch file not writable: %s", exc)
            return
        self._epoch_seen = self._read_epoch()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            self._sync_epoch()
            item = self._data.get(key)
            if item is None:
                return None
            if item[0] <= time.monotonic():
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return item[1]

    def set(self, key: str, value: bytes, ttl: int, indexes: Iterable[str]) -> None:
        with self._lock:
            self._data[key] = (time.monotonic() + ttl, value)
            self._data.move_to_end(key)
            for index in indexes:
                self._indexes.setdefault(index, set()).add(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def delete_indexes(self, indexes: Iterable[str], keep: Callable[[str], bool] | None) -> int:
        removed = 0
        with self._lock:
            for index in indexes:
                members = self._indexes.get(index, set())
                for key in list(members):
                    if keep is not None and keep(key):
                        continue
                    members.discard(key)
                    if self._data.pop(key, None) is not None:
                        removed += 1
                if not members:
                    self._indexes.pop(index, None)
            self._bump_epoch()
        return removed

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._data if k.startswith(prefix)]
            for key in doomed:
                del self._data[key]
            for index in [i for i in self._indexes if i.startswith(prefix)]:
                del self._indexes[index]
            self._bump_epoch()
            return len(doomed)

    def ping(self) -> None:
        return None


class RedisBackend:
    """Redis: one GET per read; a write stores the value and adds its key to index sets."""

    name = "redis"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, key: str) -> bytes | None:
        value = self.client.get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes, ttl: int, indexes: Iterable[str]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, value, ex=ttl)
        for index in indexes:
            pipe.sadd(index, key)
            # An index lives a little longer than the longest value it points to.
            pipe.expire(index, max(TTLS.values()) * 2)
        pipe.execute()

    def delete_indexes(self, indexes: Iterable[str], keep: Callable[[str], bool] | None) -> int:
        removed = 0
        for index in indexes:
            members = [m.decode() for m in self.client.smembers(index)]
            doomed = [m for m in members if keep is None or not keep(m)]
            if doomed:
                pipe = self.client.pipeline(transaction=False)
                pipe.unlink(*doomed)
                pipe.srem(index, *doomed)
                removed += int(pipe.execute()[0])
        return removed

    def delete_prefix(self, prefix: str) -> int:
        removed = 0
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=f"{prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(self.client.unlink(*batch))
                batch = []
        if batch:
            removed += int(self.client.unlink(*batch))
        return removed

    def ping(self) -> None:
        self.client.ping()


class CircuitBreaker:
    """Skip a dependency for a back-off period after it failed (doubling, capped)."""

    def __init__(self, backoff_seconds: float, max_factor: int = 12) -> None:
        self.backoff = backoff_seconds
        self.max_factor = max_factor
        self.open_until = 0.0
        self.failures = 0
        self._lock = threading.Lock()

    def allow(self) -> bool:
        return time.monotonic() >= self.open_until

    def failure(self) -> bool:
        """Record a failure; True when this failure opened the breaker (log it once)."""
        with self._lock:
            was_closed = self.failures == 0
            self.failures += 1
            factor = min(2 ** (self.failures - 1), self.max_factor)
            self.open_until = time.monotonic() + self.backoff * factor
            return was_closed

    def success(self) -> bool:
        """Record a success; True when it closed a breaker that was open."""
        with self._lock:
            recovered = self.failures > 0
            self.failures = 0
            self.open_until = 0.0
            return recovered


class _Flight:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: bytes | None = None
        self.error: BaseException | None = None


REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


class Cache:
    """The cache of one process. ``enabled=False`` computes every value (always a MISS)."""

    def __init__(
        self,
        backend: Backend | None,
        *,
        namespace: str,
        breaker: CircuitBreaker | None = None,
        local_seconds: float = 0.0,
        local_max_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.backend = backend
        self.namespace = namespace
        self.breaker = breaker or CircuitBreaker(5.0)
        # Local copies in front of Redis (see the module docstring); their listener starts
        # with the first read, so a process that never reads starts no thread.
        self.local: LocalCopies | None = None
        self._listener: InvalidationListener | None = None
        self._listener_pid = 0
        if isinstance(backend, RedisBackend) and local_seconds > 0:
            self.local = LocalCopies(local_seconds, local_max_bytes)
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._flush_pending = False
        self.stats = {"hits": 0, "misses": 0, "errors": 0}
        self._async = AsyncTwin(backend.client) if isinstance(backend, RedisBackend) else None

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def redis_client(self) -> redis.Redis | None:
        return self.backend.client if isinstance(self.backend, RedisBackend) else None

    @property
    def channel(self) -> str:
        return f"{self.namespace}:invalidations"

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        client = self.redis_client
        if client is not None:
            client.close()

    def local_copy(self, full_key: str) -> bytes | None:
        """This process's current local copy of a rendered key (None: none, or not trusted
        now: the breaker is open or the invalidation channel is lost)."""
        local = self.local
        if local is None or not self.breaker.allow():
            return None
        return local.get(full_key)

    def _local_copies(self) -> LocalCopies | None:
        """The local copies, with their listener started in this process (a forked worker
        starts its own)."""
        local = self.local
        if local is None:
            return None
        if self._listener_pid != os.getpid():
            client = self.redis_client
            assert client is not None
            self._listener_pid = os.getpid()
            self._listener = InvalidationListener(client, self.channel, local, self.breaker.backoff)
            self._listener.start()
        return local

    @property
    def backend_name(self) -> str:
        return self.backend.name if self.backend else "off"

    # -- reads --------------------------------------------------------------------------------
    def get_or_compute(self, key: CacheKey, compute: Callable[[], bytes]) -> tuple[bytes, bool]:
        """The cached body of ``key``, or ``compute()`` stored under it. Returns (body, hit)."""
        if self.backend is None:
            self.stats["misses"] += 1
            return compute(), False
        full = key.render(self.namespace)
        # No local copies while the breaker is open: this process may be missing invalidations.
        local = self._local_copies() if self.breaker.allow() else None
        generation = local.generation if local is not None else 0
        if local is not None:
            copy = local.get(full)
            if copy is not None:
                self.stats["hits"] += 1
                return copy, True
        cached = self._call(lambda b: b.get(full))
        if cached is not None:
            self.stats["hits"] += 1
            if local is not None:
                local.put(full, key, cached, generation)
            return cached, True
        self.stats["misses"] += 1
        with self._flights_lock:
            flight = self._flights.get(full)
            leader = flight is None
            if flight is None:
                flight = self._flights[full] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.value is not None
            return flight.value, False
        try:
            value = compute()
            flight.value = value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(full, None)
            flight.done.set()
        self._call(lambda b: b.set(full, value, key.ttl, self._indexes_of(key)))
        if local is not None:
            local.put(full, key, value, generation)
        return value, False

    def _indexes_of(self, key: CacheKey) -> list[str]:
        indexes = [f"{self.namespace}:idx:resource:{key.resource}"]
        if key.scope != PLATFORM_SCOPE:
            indexes.append(f"{self.namespace}:idx:{key.scope}")
        return indexes

    async def alookup(self, key: CacheKey) -> tuple[bytes | None, int | None]:
        """``key`` looked up on the event loop (this process's local copies, else Redis through
        ``redis.asyncio``): a HIT costs no thread-pool hop (profiled: threads waiting for the GIL
        after their Redis round trip were most of a cached read's latency).

        Returns ``(body, None)`` for a HIT, else ``(None, generation)``: the caller computes the
        value and hands it to ``store`` with that generation (of the local copies, so that a
        copy computed across an invalidation is not kept; None when the local copies are not
        to be trusted now: the breaker is open, a flush is pending or Redis just failed)."""
        backend = self.backend
        if backend is None or self._flush_pending or not self.breaker.allow():
            self.stats["misses"] += 1
            return None, None
        full = key.render(self.namespace)
        local = self._local_copies()
        generation = 0
        if local is not None:
            copy = local.get(full)
            if copy is not None:
                self.stats["hits"] += 1
                return copy, None
            generation = local.generation
        value: Any
        if self._async is not None:
            try:
                value = await self._async.get().get(full)
            except REDIS_ERRORS as exc:
                self._backend_failed(backend, exc)
                self.stats["misses"] += 1
                return None, None
        else:
            value = backend.get(full)
        if not isinstance(value, bytes):
            self.stats["misses"] += 1
            return None, generation
        self.stats["hits"] += 1
        if local is not None:
            local.put(full, key, value, generation)
        return value, None

    def store(self, key: CacheKey, value: bytes, generation: int | None) -> None:
        """Store ``value``, computed after ``alookup`` reported a miss with ``generation``
        (blocking I/O: call it from a thread). A pending flush is done first; with the breaker
        open nothing is stored."""
        full = key.render(self.namespace)
        self._call(lambda b: b.set(full, value, key.ttl, self._indexes_of(key)))
        if generation is None or not self.breaker.allow():
            return
        local = self._local_copies()
        if local is not None:
            local.put(full, key, value, generation)

    # -- invalidation -------------------------------------------------------------------------
    def invalidate_tenant(self, tenant_id: uuid.UUID | str) -> int:
        """Everything shown about one tenant, and the platform-wide views that list it.
        Returns the number of keys removed (-1 when the backend could not be reached)."""
        return self._invalidate(
            Invalidation(scopes=frozenset({tenant_scope(tenant_id)}), resources=PLATFORM_RESOURCES)
        )

    def invalidate_usage(self, tenant_ids: Iterable[uuid.UUID | str] | None = None) -> None:
        """Usage figures: of the given tenants (and platform overviews), or of every tenant."""
        if tenant_ids is None:
            self._invalidate(Invalidation(resources=USAGE_RESOURCES))
            return
        self._invalidate(
            Invalidation(
                scopes=frozenset(tenant_scope(t) for t in tenant_ids),
                resources=USAGE_RESOURCES & PLATFORM_RESOURCES,
                usage_only=True,
            )
        )

    def invalidate_resource(self, resource: str) -> None:
        if resource not in TTLS:
            raise ValueError(f"unknown cache resource {resource!r}")
        self._invalidate(Invalidation(resources=frozenset({resource})))

    def invalidate_all(self) -> int:
        """Every key of this environment's namespace; returns how many (-1: unreachable)."""
        if self.backend is None:
            return 0
        everything = Invalidation(everything=True)
        self._apply_locally(everything)
        removed = int(self._call(lambda b: b.delete_prefix(f"{self.namespace}:"), default=-1))
        if removed == -1:
            self._flush_pending = True
        self._publish(everything)
        return removed

    def _invalidate(self, invalidation: Invalidation) -> int:
        if self.backend is None:
            return 0
        self._apply_locally(invalidation)
        indexes = invalidation.indexes(self.namespace)
        keep = invalidation.keep(self.namespace)
        removed = int(self._call(lambda b: b.delete_indexes(indexes, keep), default=-1))
        if removed == -1:
            self._flush_pending = True
        self._publish(invalidation)
        return removed

    def _apply_locally(self, invalidation: Invalidation) -> None:
        if self.local is not None:
            self.local.apply(invalidation)

    def _publish(self, invalidation: Invalidation) -> None:
        """Tell every process (their local copies) after the shared keys are gone."""
        client = self.redis_client
        if client is None or not self.breaker.allow():
            return
        try:
            client.publish(self.channel, invalidation.to_message())
        except REDIS_ERRORS as exc:
            # The listeners of other processes lose their subscription too when Redis is
            # gone, which switches their copies off; a lone publish failure is logged.
            log.warning(
                "cache invalidation not published", extra={"error": f"{type(exc).__name__}"}
            )

    # -- health -------------------------------------------------------------------------------
    def readiness(self) -> str:
        """'ok', 'off', 'memory', or 'degraded: …' (a cache is never a reason to be unready)."""
        if self.backend is None:
            return "off"
        if self.backend.name == "memory":
            return "memory"
        try:
            self.backend.ping()
        except REDIS_ERRORS as exc:
            self.breaker.failure()
            return f"degraded: redis unavailable ({type(exc).__name__}), serving from database"
        return "ok"

    # -- guarded access to the backend ----------------------------------------------------------
    def _call(self, op: Callable[[Backend], Any], default: Any = None) -> Any:
        backend = self.backend
        if backend is None or not self.breaker.allow():
            return default
        try:
            if self._flush_pending:
                backend.delete_prefix(f"{self.namespace}:")
                self._flush_pending = False
                self._publish(Invalidation(everything=True))
            result = op(backend)
        except REDIS_ERRORS as exc:
            self._backend_failed(backend, exc)
            return default
        if self.breaker.success():
            log.info("cache backend available again", extra={"cache_backend": backend.name})
        return result

    def _backend_failed(self, backend: Backend, exc: BaseException) -> None:
        """Count the error and open the breaker; the opening is logged once."""
        self.stats["errors"] += 1
        if self.breaker.failure():
            log.warning(
                "cache backend unavailable, serving from the database",
                extra={"cache_backend": backend.name, "error": f"{type(exc).__name__}: {exc}"},
            )


def async_redis_like(client: redis.Redis) -> aioredis.Redis:
    """An asyncio client with the connection settings of ``client`` and no retries (a failure
    opens the circuit breaker at once; the library's default retries took 9 s on a refused
    connection)."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    kwargs = {k: v for k, v in client.connection_pool.connection_kwargs.items() if k != "retry"}
    return aioredis.Redis(**kwargs, retry=Retry(NoBackoff(), 0))


class AsyncTwin:
    """The asyncio counterpart of a synchronous client (``async_redis_like``), one per event
    loop (test clients and server workers each run their own loop)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        twin = self._per_loop.get(loop)
        if twin is None:
            twin = self._per_loop[loop] = async_redis_like(self.client)
        return twin


def redis_client(url: str, timeout_ms: int) -> redis.Redis:
    timeout = timeout_ms / 1000.0
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
        health_check_interval=0,
    )


def build_cache(settings: Settings, client: redis.Redis | None = None) -> Cache:
    namespace = f"{settings.cache_prefix}:{settings.env}"
    breaker = CircuitBreaker(settings.cache_backoff_seconds)
    if not settings.cache_enabled:
        return Cache(None, namespace=namespace, breaker=breaker)
    url = settings.resolved_redis_url
    backend: Backend
    if url:
        backend = RedisBackend(client or redis_client(url, settings.cache_timeout_ms))
        return Cache(
            backend,
            namespace=namespace,
            breaker=breaker,
            local_seconds=settings.effective_cache_local_seconds,
            local_max_bytes=settings.cache_local_max_mb * 1024 * 1024,
        )
    backend = MemoryBackend(
        settings.cache_memory_max_entries,
        epoch_file=settings.var_dir / f"cache-epoch-{settings.cache_prefix}-{settings.env}",
    )
    return Cache(backend, namespace=namespace, breaker=breaker)
