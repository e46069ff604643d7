"""Reads on the event loop (``core.deps.async_reads`` / ``read_db``): where they run, on which
connection, and that the server's lifespan opens and closes them."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.app import create_app
from alquimista_ops.core import deps
from alquimista_ops.core.cache import Cache, CacheKey
from alquimista_ops.core.db import asyncpg_url, create_db_engine, read_concurrency
from alquimista_ops.core.http_cache import cached_value
from alquimista_ops.core.runtime import build_runtime
from alquimista_ops.core.settings import Settings
from alquimista_ops.demo.seed import SeedReport
from tests.conftest import auth, issue_token, make_settings


def _where(conn: Connection) -> tuple[int, bool, str, int, str]:
    """(thread, autocommit, search_path, tenants, plan_cache_mode) as seen by a read
    function."""
    return (
        threading.get_ident(),
        bool(conn.connection.dbapi_connection.autocommit),  # type: ignore[union-attr]
        str(conn.exec_driver_sql("SHOW search_path").scalar()),
        int(conn.execute(sa.text("SELECT count(*) FROM tenants")).scalar_one()),
        str(conn.exec_driver_sql("SHOW plan_cache_mode").scalar()),
    )


def test_reads_run_on_the_event_loop_while_open(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    with engine.connect() as conn:
        expected = int(conn.execute(sa.text("SELECT count(*) FROM tenants")).scalar_one())
    assert expected > 0

    async def scenario() -> tuple[
        tuple[int, bool, str, int, str], tuple[int, bool, str, int, str], int
    ]:
        loop_thread = threading.get_ident()
        async with deps.async_reads(settings, engine):
            inside = await deps.read_db(engine, _where)
        after = await deps.read_db(engine, _where)
        return inside, after, loop_thread

    inside, after, loop_thread = asyncio.run(scenario())
    thread, autocommit, search_path, count, plans = inside
    assert thread == loop_thread  # no thread-pool hop
    assert autocommit  # no BEGIN/COMMIT round trips
    assert f'"{settings.db_schema}"' in search_path or settings.db_schema in search_path
    assert count == expected
    assert plans == "force_generic_plan"  # prepared reads are not re-planned every time
    # closed: the thread pool again, same answer, PostgreSQL's own plan choice
    assert after[0] != loop_thread
    assert after[3] == expected
    assert after[4] == "auto"


def test_async_reads_belong_to_the_loop_that_opened_them(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    """Another event loop (another test client, another worker) reads through the thread pool."""
    opened = threading.Event()
    release = threading.Event()

    async def hold() -> None:
        async with deps.async_reads(settings, engine):
            opened.set()
            while not release.is_set():
                await asyncio.sleep(0.01)

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert opened.wait(10)

        async def elsewhere() -> tuple[int, int]:
            return threading.get_ident(), (await deps.read_db(engine, _where))[0]

        loop_thread, read_thread = asyncio.run(elsewhere())
        assert read_thread != loop_thread
    finally:
        release.set()
        holder.join(10)


def test_sqlite_keeps_the_thread_pool(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'reads.db'}")
    sqlite = create_db_engine(settings)
    try:

        async def scenario() -> tuple[int, int]:
            async with deps.async_reads(settings, sqlite):
                thread = await deps.read_db(
                    sqlite,
                    lambda conn: (threading.get_ident(), conn.exec_driver_sql("SELECT 1"))[0],
                )
            return threading.get_ident(), thread

        loop_thread, read_thread = asyncio.run(scenario())
        assert read_thread != loop_thread
    finally:
        sqlite.dispose()


def test_cache_off_reads_through_the_server_lifespan(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """With the cache off, a tenant read (status check and answer) runs on the event loop's
    engine, and the engine is disposed when the app stops."""
    settings = make_settings(tmp_path, pg_database, CACHE_ENABLED="false")
    app = create_app(runtime=build_runtime(settings, engine))
    headers = auth(issue_token(app.state.runtime, "INTERNAL_ADMIN"))
    url = f"/tenant/me?tenant_id={demo_data.demo_tenant_id}"

    def readers() -> dict[int, Any]:  # other clients of the session may have theirs open
        return {
            id(reader): reader
            for per_loop in deps._async_readers.values()
            for key, reader in per_loop.items()
            if key == id(engine)
        }

    before = readers()
    with TestClient(app) as client:
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "MISS"
        assert response.json()["id"] == str(demo_data.demo_tenant_id)
        opened = [reader for key, reader in readers().items() if key not in before]
        assert len(opened) == 1
        assert opened[0].engine.sync_engine.pool.checkedout() == 0  # returned after the request
    assert readers() == before


def test_async_reads_can_be_turned_off(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    settings = make_settings(tmp_path, pg_database, DB_ASYNC_READS="false")

    async def scenario() -> tuple[int, int]:
        async with deps.async_reads(settings, engine):
            return threading.get_ident(), (await deps.read_db(engine, _where))[0]

    loop_thread, read_thread = asyncio.run(scenario())
    assert read_thread != loop_thread


def test_event_loop_reads_use_asyncpg_with_the_same_connection_settings() -> None:
    url, connect_args = asyncpg_url(
        sa.make_url(
            "postgresql+psycopg://u:p@db.example:6432/ops?sslmode=require&connect_timeout=5"
        )
    )
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.username) == ("db.example", 6432, "ops", "u")
    assert url.password == "p"
    assert dict(url.query) == {}
    assert connect_args == {"ssl": "require", "timeout": 5.0}


class _SlowReads:
    """A read function that takes 50 ms in PostgreSQL and counts how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def read(self, conn: Connection) -> int:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return int(conn.execute(sa.text("SELECT count(*) FROM pg_sleep(0.05)")).scalar_one())
        finally:
            with self._lock:
                self.running -= 1


def test_event_loop_reads_run_db_read_concurrency_at_a_time(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """Eight reads at once on one event loop: DB_READ_CONCURRENCY of them run, the others
    wait their turn, and every one answers."""
    settings = make_settings(tmp_path, pg_database, DB_READ_CONCURRENCY="3")
    reads = _SlowReads()

    async def scenario() -> list[int]:
        async with deps.async_reads(settings, engine):
            return list(await asyncio.gather(*(deps.read_db(engine, reads.read) for _ in range(8))))

    assert asyncio.run(scenario()) == [1] * 8
    assert reads.most == 3


def test_read_concurrency_follows_where_postgresql_runs(tmp_path: Path, pg_database: str) -> None:
    settings = make_settings(tmp_path, pg_database)
    for local in (
        "postgresql+psycopg://postgres@127.0.0.1:5432/ops",
        "postgresql+psycopg://postgres@localhost/ops",
        "postgresql+psycopg://postgres@[::1]/ops",
        "postgresql+psycopg:///ops?host=/var/run/postgresql",
    ):
        assert read_concurrency(settings, sa.make_url(local)) == 1, local
    remote = sa.make_url(
        "postgresql+psycopg://ops@aurora.cluster-x.us-east-1.rds.amazonaws.com/ops"
    )
    assert read_concurrency(settings, remote) == 4
    chosen = make_settings(tmp_path, pg_database, DB_READ_CONCURRENCY="6")
    assert read_concurrency(chosen, remote) == read_concurrency(chosen, sa.make_url(local)) == 6


def test_thread_pool_reads_share_the_event_loop_reads_gate_under_the_server(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """Reads that still take the thread pool (cache misses while the cache is in trouble, reads
    that also call DynamoDB) wait, under the server, in the same line as the event-loop reads,
    so PostgreSQL never runs more than DB_READ_CONCURRENCY reads of a worker at once."""
    settings = make_settings(tmp_path, pg_database, DB_READ_CONCURRENCY="2")
    reads = _SlowReads()

    async def scenario() -> tuple[bool, int, bool]:
        async with deps.async_reads(settings, engine):
            inside = deps.read_gate(engine)
            shared = inside is deps._async_reader(engine).gate  # type: ignore[union-attr]

            async def cache_miss() -> int:
                async with deps.read_gate(engine):
                    return await asyncio.to_thread(deps.run_read, engine, reads.read)

            await asyncio.gather(
                *(deps.read_db(engine, reads.read) for _ in range(3)),
                *(cache_miss() for _ in range(3)),
            )
        outside = deps.read_gate(engine) is deps.connection_gate(engine)
        return shared, reads.most, outside

    shared, most, outside = asyncio.run(scenario())
    assert shared and outside
    assert most == 2


# -- cache misses under the server ---------------------------------------------------------
def _cache_scenario(
    tmp_path: Path, pg_database: str, engine: Engine, scenario: Any, **overrides: str
) -> Any:
    """``scenario(cache)`` on an event loop where reads run on the loop, with a Redis cache."""
    settings = make_settings(tmp_path, pg_database, **overrides)
    runtime = build_runtime(settings, engine)
    assert runtime.cache.backend_name == "redis"

    async def run() -> Any:
        async with deps.async_reads(settings, engine):
            return await scenario(runtime.cache)

    try:
        return asyncio.run(run())
    finally:
        runtime.cache.close()


def test_cache_misses_read_on_the_event_loop_once_per_key(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """Eight requests miss the same key at once: one read, on the event loop (asyncpg, no
    thread-pool hop), every request gets its value, and it is stored: the next one is a HIT."""
    key = CacheKey.build("billing_overview", "platform", {"period": "30d"})
    threads: list[int] = []

    def compute(conn: Connection) -> int:
        threads.append(threading.get_ident())
        return int(conn.execute(sa.text("SELECT count(*) FROM pg_sleep(0.05)")).scalar_one())

    async def scenario(cache: Cache) -> tuple[int, list[tuple[bytes, bool]], tuple[bytes, bool]]:
        first = await asyncio.gather(
            *(cached_value(cache, engine, key, compute, lambda n: b"%d" % n) for _ in range(8))
        )
        again = await cached_value(cache, engine, key, compute, lambda n: b"%d" % n)
        return threading.get_ident(), first, again

    loop_thread, first, again = _cache_scenario(tmp_path, pg_database, engine, scenario)
    assert threads == [loop_thread]
    assert first == [(b"1", False)] * 8
    assert again == (b"1", True)


def test_a_failed_miss_reaches_its_waiters_and_is_not_stored(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    key = CacheKey.build("billing_overview", "platform", {"period": "7d"})
    calls: list[int] = []

    def compute(conn: Connection) -> int:
        calls.append(1)
        conn.execute(sa.text("SELECT pg_sleep(0.05)"))
        if len(calls) == 1:
            raise ValueError("first read fails")
        return 7

    async def scenario(cache: Cache) -> tuple[list[Any], tuple[bytes, bool]]:
        failed = await asyncio.gather(
            *(cached_value(cache, engine, key, compute, lambda n: b"%d" % n) for _ in range(4)),
            return_exceptions=True,
        )
        return failed, await cached_value(cache, engine, key, compute, lambda n: b"%d" % n)

    failed, after = _cache_scenario(tmp_path, pg_database, engine, scenario)
    assert [type(result) for result in failed] == [ValueError] * 4
    assert after == (b"7", False)  # computed again, not a cached failure
    assert len(calls) == 2


def test_a_miss_whose_request_is_cancelled_is_computed_by_its_waiter(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """The request computing a key goes away (its client disconnected): the request waiting
    for the same key computes it instead of failing."""
    key = CacheKey.build("billing_overview", "platform", {"period": "90d"})

    def compute(conn: Connection) -> int:
        return int(conn.execute(sa.text("SELECT count(*) FROM pg_sleep(0.2)")).scalar_one())

    async def scenario(cache: Cache) -> tuple[bool, tuple[bytes, bool]]:
        leader = asyncio.create_task(cached_value(cache, engine, key, compute, b"%d".__mod__))
        await asyncio.sleep(0.05)  # the leader is reading
        waiter = asyncio.create_task(cached_value(cache, engine, key, compute, b"%d".__mod__))
        await asyncio.sleep(0.05)
        leader.cancel()
        result = await waiter
        return leader.cancelled(), result

    cancelled, result = _cache_scenario(tmp_path, pg_database, engine, scenario)
    assert cancelled
    assert result == (b"1", False)


def test_a_local_copy_computed_across_an_invalidation_is_not_kept(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """A miss computed while its key is invalidated is answered and stored in Redis as
    before, but this process keeps no local copy of it (it may predate the write)."""
    key = CacheKey.build("billing_overview", "platform", {"period": "30d"})

    async def scenario(cache: Cache) -> tuple[bytes | None, bytes | None]:
        def compute(conn: Connection) -> int:
            cache.invalidate_resource("billing_overview")  # a write lands meanwhile
            return 3

        await cached_value(cache, engine, key, compute, b"%d".__mod__)
        full = key.render(cache.namespace)
        return cache.local_copy(full), cache.backend.get(full)  # type: ignore[union-attr]

    local, stored = _cache_scenario(
        tmp_path, pg_database, engine, scenario, CACHE_LOCAL_SECONDS="30"
    )
    assert local is None
    assert stored == b"3"
