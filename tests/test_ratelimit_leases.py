"""The Redis rate limiter's leases: processes together never admit more than the limit, near
the limit the count is exact, and most requests cost no Redis round trip."""

from __future__ import annotations

import asyncio
import uuid

import redis

from alquimista_ops.core.cache import redis_client
from alquimista_ops.core.ratelimit import LEASE_MAX, RateLimiter, Verdict
from tests.test_cache import RedisServer, own_redis  # noqa: F401  (fixture)

WINDOW_START = 1_800_000_000.0  # a fixed window: the test cannot straddle two


def _limiter(url: str, namespace: str, per_user: int) -> RateLimiter:
    """One process's limiter (its own Redis client)."""
    return RateLimiter(
        namespace=namespace,
        per_user=per_user,
        per_address=0,
        window_seconds=60,
        client=redis_client(url, 500),
    )


def _incrby_calls(url: str) -> int:
    stats = redis.Redis.from_url(url).info("commandstats")
    return int(stats.get("cmdstat_incrby", {}).get("calls", 0))


def test_processes_together_admit_exactly_the_limit(own_redis: RedisServer) -> None:  # noqa: F811
    namespace = f"lease-{uuid.uuid4().hex[:8]}"
    processes = [_limiter(own_redis.url, namespace, 1000) for _ in range(3)]
    admitted = [0, 0, 0]

    async def requests() -> tuple[bool, bool]:
        for i in range(1600):
            which = (i * 7 + i // 5) % 3  # uneven interleaving
            if (await processes[which].acheck("user-1", None, now=WINDOW_START)).allowed:
                admitted[which] += 1
        other_user = await processes[0].acheck("user-2", None, now=WINDOW_START)
        next_window = await processes[1].acheck("user-1", None, now=WINDOW_START + 60)
        return other_user.allowed, next_window.allowed

    other_user, next_window = asyncio.run(requests())
    assert sum(admitted) == 1000, admitted
    assert all(n > 0 for n in admitted)
    assert other_user  # another user is counted apart
    assert next_window  # the next window starts again


def test_most_requests_cost_no_round_trip(own_redis: RedisServer) -> None:  # noqa: F811
    limiter = _limiter(own_redis.url, f"lease-{uuid.uuid4().hex[:8]}", 1_000_000)
    before = _incrby_calls(own_redis.url)

    async def many() -> list[bool]:
        return [
            (await limiter.acheck("user-1", None, now=WINDOW_START)).allowed for _ in range(2000)
        ]

    assert all(asyncio.run(many()))
    round_trips = _incrby_calls(own_redis.url) - before
    assert round_trips <= 2000 // LEASE_MAX + 1, round_trips


def test_a_small_limit_is_exact_and_refusals_stay_local(own_redis: RedisServer) -> None:  # noqa: F811
    limiter = _limiter(own_redis.url, f"lease-{uuid.uuid4().hex[:8]}", 5)

    async def requests(n: int) -> list[Verdict]:
        return [await limiter.acheck("user-1", None, now=WINDOW_START) for _ in range(n)]

    verdicts = asyncio.run(requests(8))
    assert [v.allowed for v in verdicts] == [True] * 5 + [False] * 3
    assert verdicts[-1].scope == "user" and verdicts[-1].limit == 5
    before = _incrby_calls(own_redis.url)
    assert not asyncio.run(requests(1))[0].allowed
    assert _incrby_calls(own_redis.url) == before  # known to be exhausted for this window
