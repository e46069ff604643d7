"""Local copies in front of Redis: a HIT without a round trip, dropped at once by any
process's invalidation (published on Redis), never older than CACHE_LOCAL_SECONDS, and off
while the invalidation channel is lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from alquimista_ops.core.cache import (
    Cache,
    CacheKey,
    CircuitBreaker,
    Invalidation,
    LocalCopies,
    RedisBackend,
    build_cache,
    redis_client,
    tenant_scope,
)
from alquimista_ops.core.settings import Settings
from tests.conftest import TEST_REDIS_URL
from tests.test_cache import RedisServer, own_redis  # noqa: F401  (fixture)

TENANT = uuid.uuid4()
ME = CacheKey.build("tenant_me", tenant_scope(TENANT))
OVERVIEW = CacheKey.build("usage_overview", "platform", {"period": "30d"})
BILLING = CacheKey.build("billing_overview", "platform", {"period": "30d"})


def _process_cache(namespace: str, url: str = TEST_REDIS_URL, seconds: float = 5.0) -> Cache:
    """A cache as one server process builds it: its own Redis client and listener."""
    return Cache(
        RedisBackend(redis_client(url, 200)),
        namespace=namespace,
        breaker=CircuitBreaker(0.2),
        local_seconds=seconds,
    )


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"local-test-{uuid.uuid4().hex[:8]}:test"
    yield name
    client = redis.Redis.from_url(TEST_REDIS_URL)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)


def _wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def _active(cache: Cache) -> bool:
    cache.get_or_compute(CacheKey.build("tenant_status", "tenant:probe"), lambda: b"x")
    return cache.local is not None and cache.local.active


def test_a_local_copy_answers_without_redis_until_it_expires(namespace: str) -> None:
    cache = _process_cache(namespace, seconds=0.5)
    try:
        assert _wait_until(lambda: _active(cache))
        assert cache.get_or_compute(ME, lambda: b"v1") == (b"v1", False)
        # Removed from Redis behind the cache's back: the local copy still answers ...
        redis.Redis.from_url(TEST_REDIS_URL).delete(ME.render(namespace))
        assert cache.get_or_compute(ME, lambda: b"v2") == (b"v1", True)
        # ... but never longer than CACHE_LOCAL_SECONDS.
        time.sleep(0.6)
        assert cache.get_or_compute(ME, lambda: b"v2") == (b"v2", False)
    finally:
        cache.close()


def test_another_process_invalidation_drops_the_local_copies(namespace: str) -> None:
    reader = _process_cache(namespace)
    writer = _process_cache(namespace)
    try:
        assert _wait_until(lambda: _active(reader))
        reader.get_or_compute(ME, lambda: b"old me")
        reader.get_or_compute(OVERVIEW, lambda: b"old overview")
        reader.get_or_compute(BILLING, lambda: b"old billing")
        assert reader.get_or_compute(ME, lambda: b"unused") == (b"old me", True)

        writer.invalidate_usage([TENANT])  # a rollup in another process
        assert _wait_until(lambda: reader.get_or_compute(ME, lambda: b"new me")[0] == b"new me")
        assert reader.get_or_compute(OVERVIEW, lambda: b"new overview")[0] == b"new overview"
        # billing figures do not come from usage: untouched
        assert reader.get_or_compute(BILLING, lambda: b"new billing") == (b"old billing", True)

        writer.invalidate_all()
        assert _wait_until(
            lambda: reader.get_or_compute(BILLING, lambda: b"new billing")[0] == b"new billing"
        )
    finally:
        reader.close()
        writer.close()


def test_the_async_read_uses_and_fills_the_local_copies(namespace: str) -> None:
    reader = _process_cache(namespace)
    writer = _process_cache(namespace)
    try:
        assert _wait_until(lambda: _active(reader))
        writer.get_or_compute(ME, lambda: b"stored by another process")
        assert asyncio.run(reader.alookup(ME))[0] == b"stored by another process"  # from Redis
        redis.Redis.from_url(TEST_REDIS_URL).delete(ME.render(namespace))
        assert asyncio.run(reader.alookup(ME))[0] == b"stored by another process"  # local copy
        writer.invalidate_tenant(TENANT)
        copies = reader.local
        assert copies is not None
        assert _wait_until(lambda: copies.get(ME.render(namespace)) is None)
        assert asyncio.run(reader.alookup(ME))[0] is None
    finally:
        reader.close()
        writer.close()


def test_a_value_read_before_an_invalidation_is_not_kept() -> None:
    copies = LocalCopies(5.0, 1 << 20)
    copies.set_active(True)
    generation = copies.generation  # a reader starts its Redis GET ...
    copies.apply(Invalidation(scopes=frozenset({tenant_scope(TENANT)})))  # ... one arrives
    copies.put(ME.render("ns"), ME, b"old", generation)
    assert copies.get(ME.render("ns")) is None
    copies.put(ME.render("ns"), ME, b"new", copies.generation)
    assert copies.get(ME.render("ns")) == b"new"


def test_local_copies_stay_within_their_byte_budget() -> None:
    copies = LocalCopies(5.0, 10_000)
    copies.set_active(True)
    for i in range(20):
        key = CacheKey.build("tenant_me", tenant_scope(uuid.UUID(int=i)))
        copies.put(key.render("ns"), key, b"x" * 1000, copies.generation)
    assert len(copies) == 10  # the oldest went first
    assert copies.get(CacheKey.build("tenant_me", tenant_scope(uuid.UUID(int=19))).render("ns"))
    assert not copies.get(CacheKey.build("tenant_me", tenant_scope(uuid.UUID(int=0))).render("ns"))


def test_a_lost_invalidation_channel_switches_the_copies_off(
    namespace: str,
    own_redis: RedisServer,  # noqa: F811
) -> None:
    cache = _process_cache(namespace, url=own_redis.url)
    try:
        assert _wait_until(lambda: _active(cache))
        cache.get_or_compute(ME, lambda: b"v1")
        assert cache.local is not None and cache.local.get(ME.render(namespace)) == b"v1"
        own_redis.stop()  # nobody can tell this process about invalidations any more
        assert _wait_until(lambda: cache.local is not None and not cache.local.active)
        assert len(cache.local) == 0
        assert cache.get_or_compute(ME, lambda: b"from the database") == (
            b"from the database",
            False,
        )
    finally:
        cache.close()


def test_an_unreadable_message_invalidates_everything() -> None:
    assert Invalidation.from_message(b"not json") == Invalidation(everything=True)
    message = Invalidation(resources=frozenset({"tenants_list"}), usage_only=True).to_message()
    assert Invalidation.from_message(message.encode()).resources == {"tenants_list"}


def test_no_local_copies_on_lambda(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A frozen Lambda instance cannot listen for invalidations: it reads Redis every time."""
    settings = Settings(REDIS_URL=TEST_REDIS_URL, VAR_DIR=str(tmp_path))  # type: ignore[call-arg]
    assert build_cache(settings).local is not None
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "opdash-tenant-me")
    assert build_cache(settings).local is None
