"""The read cache: truthful X-Cache, TTLs, key namespacing, invalidation, per-role views,
single flight, and a Redis that stops mid-test (requests keep being served from the database)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.core.cache import Cache, CacheKey, MemoryBackend
from alquimista_ops.core.schema import tenants
from alquimista_ops.core.settings import Settings
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime, build_runtime
from tests.conftest import TEST_REDIS_URL, auth, issue_token, make_settings


@pytest.fixture(scope="module")
def admin(demo_data: SeedReport, runtime: Runtime) -> dict[str, str]:
    return auth(issue_token(runtime, "INTERNAL_ADMIN"))


def _get(client: TestClient, url: str, headers: dict[str, str]) -> Any:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response


def test_hit_after_miss_same_body_and_namespaced_key(
    client: TestClient, admin: dict[str, str], runtime: Runtime, settings: Settings
) -> None:
    runtime.cache.invalidate_all()
    first = _get(client, "/internal/tenants?sort_by=created_at", admin)
    second = _get(client, "/internal/tenants?sort_by=created_at", admin)
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert first.content == second.content
    assert second.headers["cache-control"] == "private, max-age=300"
    r = redis.Redis.from_url(TEST_REDIS_URL)
    keys = [k.decode() for k in r.scan_iter(match=f"{settings.cache_prefix}:test:tenants_list:*")]
    assert keys and all(
        k.startswith(f"{settings.cache_prefix}:test:tenants_list:platform:") for k in keys
    )
    assert 0 < r.ttl(keys[0]) <= 300


@pytest.mark.parametrize(
    ("url", "ttl"),
    [
        ("/tenant/me", 300),
        ("/tenant/agents", 300),
        ("/tenant/integrations", 300),
        ("/tenant/usage?period=7d", 600),
        ("/tenant/incidents", 180),
        ("/internal/tenants", 300),
        ("/internal/tenants/{tenant}", 300),
        ("/internal/tenants/{tenant}/agents", 300),
        ("/internal/usage/overview", 600),
        ("/internal/billing/overview", 900),
    ],
)
def test_ttl_per_resource(
    client: TestClient, admin: dict[str, str], demo_data: SeedReport, url: str, ttl: int
) -> None:
    tenant = demo_data.demo_tenant_id
    url = url.format(tenant=tenant)
    if url.startswith("/tenant/"):
        url += ("&" if "?" in url else "?") + f"tenant_id={tenant}"
    first = _get(client, url, admin)
    second = _get(client, url, admin)
    assert second.headers["x-cache"] == "HIT"
    assert first.content == second.content
    assert second.headers["cache-control"] == f"private, max-age={ttl}"


def test_tenant_keys_are_scoped_by_tenant(
    client: TestClient, demo_data: SeedReport, runtime: Runtime, engine: Engine
) -> None:
    own = demo_data.demo_tenant_id
    with engine.connect() as conn:
        other = (
            conn.execute(
                sa.select(tenants.c.id).where(tenants.c.id != own, tenants.c.status == "active")
            )
            .scalars()
            .first()
        )
    runtime.cache.invalidate_all()
    mine = _get(client, "/tenant/me", auth(issue_token(runtime, "TENANT_USER", own)))
    theirs = _get(client, "/tenant/me", auth(issue_token(runtime, "TENANT_USER", other)))
    assert mine.headers["x-cache"] == theirs.headers["x-cache"] == "MISS"
    assert mine.json()["id"] == str(own) and theirs.json()["id"] == str(other)


def test_integration_config_view_is_part_of_the_key(
    client: TestClient, demo_data: SeedReport, runtime: Runtime
) -> None:
    tenant = demo_data.demo_tenant_id
    runtime.cache.invalidate_all()
    admin_view = _get(
        client, "/tenant/integrations", auth(issue_token(runtime, "TENANT_ADMIN", tenant))
    )
    user_view = _get(
        client, "/tenant/integrations", auth(issue_token(runtime, "TENANT_USER", tenant))
    )
    assert admin_view.headers["x-cache"] == "MISS" and user_view.headers["x-cache"] == "MISS"
    assert all("config" in i for i in admin_view.json()["integrations"])
    assert all("config" not in i for i in user_view.json()["integrations"])
    again = _get(client, "/tenant/integrations", auth(issue_token(runtime, "TENANT_USER", tenant)))
    assert again.headers["x-cache"] == "HIT"
    assert all("config" not in i for i in again.json()["integrations"])


def test_invalidate_tenant_shows_the_write(
    client: TestClient,
    admin: dict[str, str],
    demo_data: SeedReport,
    runtime: Runtime,
    engine: Engine,
) -> None:
    tenant = demo_data.demo_tenant_id
    url = f"/internal/tenants/{tenant}"
    original = _get(client, url, admin).json()["tenant"]["name"]
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(tenants).where(tenants.c.id == tenant).values(name="Renamed Ltda")
            )
        cached = _get(client, url, admin)
        assert cached.headers["x-cache"] == "HIT" and cached.json()["tenant"]["name"] == original
        _get(client, "/internal/billing/overview", admin)
        runtime.cache.invalidate_tenant(tenant)  # what a command does after its commit
        fresh = _get(client, url, admin)
        assert (
            fresh.headers["x-cache"] == "MISS" and fresh.json()["tenant"]["name"] == "Renamed Ltda"
        )
        assert _get(client, "/internal/billing/overview", admin).headers["x-cache"] == "MISS"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.update(tenants).where(tenants.c.id == tenant).values(name=original))
        runtime.cache.invalidate_tenant(tenant)


def test_invalidate_usage_drops_only_usage_views(
    client: TestClient, admin: dict[str, str], demo_data: SeedReport, runtime: Runtime
) -> None:
    tenant = demo_data.demo_tenant_id
    usage = f"/tenant/usage?tenant_id={tenant}"
    integrations = f"/tenant/integrations?tenant_id={tenant}"
    for url in (usage, integrations, "/internal/usage/overview", "/internal/billing/overview"):
        _get(client, url, admin)
    runtime.cache.invalidate_usage([tenant])
    assert _get(client, usage, admin).headers["x-cache"] == "MISS"
    assert _get(client, "/internal/usage/overview", admin).headers["x-cache"] == "MISS"
    assert _get(client, integrations, admin).headers["x-cache"] == "HIT"
    assert _get(client, "/internal/billing/overview", admin).headers["x-cache"] == "HIT"
    runtime.cache.invalidate_usage(None)
    assert _get(client, usage, admin).headers["x-cache"] == "MISS"
    runtime.cache.invalidate_resource("billing_overview")
    assert _get(client, "/internal/billing/overview", admin).headers["x-cache"] == "MISS"


def test_errors_are_not_cached(client: TestClient, admin: dict[str, str]) -> None:
    missing = f"/internal/tenants/{uuid.uuid4()}"
    for _ in range(2):
        response = client.get(missing, headers=admin)
        assert response.status_code == 404 and "x-cache" not in response.headers


def test_single_flight_computes_once_per_process() -> None:
    cache = Cache(MemoryBackend(), namespace="sf-test")
    calls = []
    gate = threading.Barrier(8)

    def compute() -> bytes:
        calls.append(1)
        time.sleep(0.3)
        return b'{"v": 1}'

    results: list[tuple[bytes, bool]] = []

    def worker() -> None:
        gate.wait()
        results.append(
            cache.get_or_compute(CacheKey.build("billing_overview", "platform"), compute)
        )

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert {r[0] for r in results} == {b'{"v": 1}'}
    assert cache.get_or_compute(CacheKey.build("billing_overview", "platform"), compute) == (
        b'{"v": 1}',
        True,
    )


def _app_with(settings: Settings, engine: Engine) -> tuple[Any, Runtime]:
    rt = build_runtime(settings, engine)
    return create_app(runtime=rt), rt


def test_in_process_cache_without_redis(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    settings = make_settings(tmp_path, pg_database, REDIS_URL="")
    app, rt = _app_with(settings, engine)
    assert rt.cache.backend_name == "memory"
    headers = auth(issue_token(rt, "INTERNAL_SUPPORT"))
    with TestClient(app) as client:
        assert _get(client, "/internal/usage/overview", headers).headers["x-cache"] == "MISS"
        assert _get(client, "/internal/usage/overview", headers).headers["x-cache"] == "HIT"
        assert client.get("/ready").json()["checks"]["cache"] == "memory"


def test_cache_disabled_is_always_a_miss(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    settings = make_settings(tmp_path, pg_database, CACHE_ENABLED="false")
    app, rt = _app_with(settings, engine)
    headers = auth(issue_token(rt, "INTERNAL_ADMIN"))
    with TestClient(app) as client:
        for _ in range(2):
            assert _get(client, "/internal/tenants", headers).headers["x-cache"] == "MISS"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free port, started and stopped by the test."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_timeout=0.2).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_stopped_mid_test_serves_from_database(
    tmp_path: Path,
    pg_database: str,
    engine: Engine,
    demo_data: SeedReport,
    own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(
        tmp_path,
        pg_database,
        REDIS_URL=own_redis.url,
        CACHE_BACKOFF_SECONDS="0.5",
        CACHE_TIMEOUT_MS="100",
    )
    app, rt = _app_with(settings, engine)
    assert rt.cache.backend_name == "redis"
    tenant = demo_data.demo_tenant_id
    headers = auth(issue_token(rt, "INTERNAL_ADMIN"))
    urls = [
        "/internal/tenants",
        f"/internal/tenants/{tenant}",
        "/internal/usage/overview",
        "/internal/billing/overview",
        f"/tenant/me?tenant_id={tenant}",
    ]
    with TestClient(app) as client:
        assert client.get("/ready").json()["checks"]["cache"] == "ok"
        for url in urls:
            assert _get(client, url, headers).headers["x-cache"] == "MISS"
            assert _get(client, url, headers).headers["x-cache"] == "HIT"

        own_redis.stop()
        for _ in range(3):
            for url in urls:
                started = time.perf_counter()
                response = client.get(url, headers=headers)
                assert response.status_code == 200, response.text
                assert response.headers["x-cache"] == "MISS"
                assert time.perf_counter() - started < 2.0
        assert any("cache backend unavailable" in r.getMessage() for r in caplog.records)
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["cache"].startswith("degraded")
        # A write during the outage: its invalidation cannot reach Redis and is remembered.
        rt.cache.invalidate_tenant(tenant)

        own_redis.start()  # same port, empty
        time.sleep(1.0)  # past the back-off
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if client.get(urls[0], headers=headers).headers["x-cache"] == "HIT":
                break
            time.sleep(0.3)
        else:
            pytest.fail("the cache did not come back after Redis restarted")
        assert client.get("/ready").json()["checks"]["cache"] == "ok"


def test_memory_backend_invalidation_matches_redis_semantics() -> None:
    cache = Cache(MemoryBackend(), namespace="mem-test")
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    keys = {
        "a_usage": CacheKey.build("tenant_usage", f"tenant:{tenant_a}", {"p": 1}),
        "a_incidents": CacheKey.build("tenant_incidents", f"tenant:{tenant_a}"),
        "b_usage": CacheKey.build("tenant_usage", f"tenant:{tenant_b}"),
        "overview": CacheKey.build("usage_overview", "platform"),
        "billing": CacheKey.build("billing_overview", "platform"),
    }

    def fill() -> None:
        for key in keys.values():
            cache.get_or_compute(key, lambda: b"{}")

    def cached() -> set[str]:
        return {name for name, key in keys.items() if cache.get_or_compute(key, lambda: b"{}")[1]}

    fill()
    assert cached() == set(keys)
    cache.invalidate_usage([tenant_a])
    assert cached() == {"a_incidents", "b_usage", "billing"}
    fill()
    cache.invalidate_tenant(tenant_b)
    assert cached() == {"a_usage", "a_incidents"}
    fill()
    cache.invalidate_usage(None)
    assert cached() == {"a_incidents", "billing"}
    fill()
    cache.invalidate_all()
    assert cached() == set()
    with pytest.raises(ValueError):
        CacheKey.build("no_such_resource", "platform")


def test_slow_redis_times_out_and_serves_from_database(
    tmp_path: Path,
    pg_database: str,
    engine: Engine,
    demo_data: SeedReport,
    own_redis: RedisServer,
) -> None:
    settings = make_settings(
        tmp_path,
        pg_database,
        REDIS_URL=own_redis.url,
        CACHE_TIMEOUT_MS="50",
        CACHE_BACKOFF_SECONDS="30",
        CACHE_LOCAL_SECONDS="0",  # every read goes to Redis
    )
    app, rt = _app_with(settings, engine)
    headers = auth(issue_token(rt, "INTERNAL_ADMIN"))
    with TestClient(app) as client:
        assert _get(client, "/internal/tenants", headers).headers["x-cache"] == "MISS"
        assert _get(client, "/internal/tenants", headers).headers["x-cache"] == "HIT"
        blocker = threading.Thread(
            target=lambda: redis.Redis.from_url(own_redis.url).execute_command(
                "DEBUG", "SLEEP", "3"
            )
        )
        blocker.start()
        time.sleep(0.2)  # Redis is now busy for 3 s
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = _get(client, "/internal/tenants", headers)
            timings.append(time.perf_counter() - started)
            assert response.headers["x-cache"] == "MISS"
        blocker.join()
    # One request pays the 50 ms timeout and opens the breaker; the others skip Redis.
    assert max(timings) < 1.0, timings
    assert sum(timings) < 2.0, timings


def test_memory_cache_invalidation_reaches_another_process_on_the_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without Redis, an invalidation made by another process (e.g. `alquimista-ops aggregate`
    beside the server) empties this process's cache through the shared epoch file."""
    from alquimista_ops.core.cache import build_cache, tenant_scope

    monkeypatch.setattr(MemoryBackend, "EPOCH_CHECK_SECONDS", 0.0)
    # a database that is never connected to: only the cache is built
    settings = make_settings(tmp_path, "postgresql://opdash@127.0.0.1:1/unused", REDIS_URL="")
    server, job = build_cache(settings), build_cache(settings)
    assert server.backend_name == job.backend_name == "memory"
    key = CacheKey.build("tenant_usage", tenant_scope(uuid.uuid4()), {"period": "7d"})
    server.get_or_compute(key, lambda: b"old")
    assert server.get_or_compute(key, lambda: b"new") == (b"old", True)
    job.invalidate_usage(None)  # the other process invalidates
    assert server.get_or_compute(key, lambda: b"new") == (b"new", False)
