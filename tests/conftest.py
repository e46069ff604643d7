"""Test infrastructure: a fresh PostgreSQL database per test process (built with the real
migrations), a private Redis prefix, and helpers for tokens and data.

The PostgreSQL server is ``TEST_DATABASE_URL`` when set (a URL of any database on it), else the
embedded server of ``make run`` with its own data directory (``var/test-postgres``), started by
the first test process and stopped by the last one.

Isolation: tests that write use the ``clean_db`` fixture, which truncates every data table
after the test (the reference data, plans and agents, stays). Read-only modules share one
seeded data set through ``demo_data``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.app import create_app
from alquimista_ops.auth.local_idp import LocalAccount
from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.reads import Query, ReadDatabase, Reads
from alquimista_ops.core.settings import Settings, normalize_database_url
from alquimista_ops.demo import seed as demo
from alquimista_ops.runtime import Runtime, build_runtime

T = TypeVar("T")

EMBEDDED_TEST_DATA = Path(__file__).resolve().parent.parent / "var" / "test-postgres"


def _test_server_url() -> str:
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        return configured
    from alquimista_ops.core.embedded import ensure_server

    # fsync off: a test server's data need not survive a crash of the machine
    server = ensure_server(EMBEDDED_TEST_DATA, settings={"fsync": False})
    return server.url("postgres")


TEST_DATABASE_URL = _test_server_url()
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SCHEMA = "alquimista_platform"
# A fixed "today" for seeded data so figures do not depend on the wall clock's date.
SEED_TODAY = date(2026, 11, 29)

REFERENCE_TABLES = {"plans", "agents", "auth_groups", "alembic_version"}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 2
        ):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    if "TEST_DATABASE_URL" in os.environ and not _reachable(TEST_DATABASE_URL, 5432):
        pytest.exit(
            f"PostgreSQL is not reachable at {TEST_DATABASE_URL}: start it, or unset "
            "TEST_DATABASE_URL to use the embedded server.",
            returncode=3,
        )
    if not _reachable(TEST_REDIS_URL, 6379):
        pytest.exit(
            f"Redis is not reachable at {TEST_REDIS_URL}. Start it, e.g. "
            '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""`, '
            "or set TEST_REDIS_URL.",
            returncode=3,
        )


def with_database(url: str, name: str) -> str:
    """``url`` with the database ``name`` (the query, e.g. a socket directory, kept)."""
    parsed = urlparse(url)
    return parsed._replace(path=f"/{name}").geturl()


def create_database() -> tuple[str, str]:
    name = f"alq_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        normalize_database_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return name, with_database(TEST_DATABASE_URL, name)


def drop_database(name: str) -> None:
    admin = sa.create_engine(
        normalize_database_url(TEST_DATABASE_URL), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def make_settings(tmp: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ENV": "test",
        "DATABASE_URL": database_url,
        "VAR_DIR": str(tmp),
        "REDIS_URL": TEST_REDIS_URL,
        "CACHE_PREFIX": f"opdash-test-{uuid.uuid4().hex[:8]}",
        "LOG_LEVEL": "WARNING",
        # the suite is not throttled (rate-limit tests build their own app).
        "RATE_LIMIT_ENABLED": "false",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name, url = create_database()
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def var_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("var")


@pytest.fixture(scope="session")
def settings(pg_database: str, var_dir: Path) -> Settings:
    return make_settings(var_dir, pg_database)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    migrate.upgrade(engine, settings.db_schema)
    with engine.begin() as conn:
        demo.seed_reference_data(conn)
        from alquimista_ops.auth.service import setup_groups

        setup_groups(conn)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def runtime(settings: Settings, engine: Engine) -> Runtime:
    return build_runtime(settings, engine)


@pytest.fixture(scope="session")
def app(runtime: Runtime) -> Any:
    return create_app(runtime=runtime)


@pytest.fixture(scope="session")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def truncate_data(engine: Engine) -> None:
    with engine.begin() as conn:
        names = [t for t in sa.inspect(conn).get_table_names() if t not in REFERENCE_TABLES]
        if names:
            conn.exec_driver_sql(
                "TRUNCATE " + ", ".join(f'"{n}"' for n in names) + " RESTART IDENTITY CASCADE"
            )


@pytest.fixture
def clean_db(engine: Engine, runtime: Runtime) -> Iterator[Engine]:
    """For tests that write: the data tables (and the read cache) are emptied after the test."""
    truncate_data(engine)
    runtime.cache.invalidate_all()
    yield engine
    truncate_data(engine)
    runtime.cache.invalidate_all()


def seeded(engine: Engine, runtime: Runtime, today: date) -> Iterator[demo.SeedReport]:
    truncate_data(engine)
    report = demo.seed(engine, demo.SeedOptions(tenants=8, days=40, seed=7, today=today))
    runtime.cache.invalidate_all()
    yield report
    truncate_data(engine)
    runtime.cache.invalidate_all()


@pytest.fixture(scope="module")
def demo_data(engine: Engine, runtime: Runtime) -> Iterator[demo.SeedReport]:
    """A small seeded data set shared (read-only) by the tests of one module."""
    yield from seeded(engine, runtime, SEED_TODAY)


def run_reads(
    target: Runtime | ReadDatabase | Connection, fn: Callable[[Reads], Awaitable[T]]
) -> T:
    """``await fn(reads)`` in one read session of ``target``, as a request runs its reads: on a
    fresh event loop in a thread of its own (the session's test client, and the browser of
    tests/web, keep an event loop running in other threads), whose pool is closed at the end.

    ``target``: a runtime (its ``reads``) or a ``ReadDatabase``; or a synchronous connection,
    whose open transaction the statements then see (each ``Query`` run with
    ``Query.execute(conn)``, the path of write transactions: ``ConnectionReads``)."""

    async def scenario() -> T:
        if isinstance(target, Connection):
            return await fn(ConnectionReads(target))  # type: ignore[arg-type]
        database = target.reads if isinstance(target, Runtime) else target
        try:
            async with database.session() as reads:
                return await fn(reads)
        finally:
            await database.close()

    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, scenario()).result()


class ConnectionReads:
    """``Reads``'s methods on a synchronous connection (``Query.execute``), one statement
    after another: a read service run inside a test's transaction (``run_reads``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def all(self, query: Query, /, **params: Any) -> list[Any]:
        return list(query.execute(self.conn, **params).all())

    async def first(self, query: Query, /, **params: Any) -> Any:
        return query.execute(self.conn, **params).first()

    async def one(self, query: Query, /, **params: Any) -> Any:
        rows = await self.all(query, **params)
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    async def scalar(self, query: Query, /, **params: Any) -> Any:
        return query.execute(self.conn, **params).scalar()

    async def gather(self, *reads: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
        return list(await asyncio.gather(*reads, return_exceptions=return_exceptions))


def issue_token(
    runtime: Runtime,
    group: str,
    tenant_id: uuid.UUID | None = None,
    *,
    kind: str = "id",
    sub: uuid.UUID | None = None,
    email: str | None = None,
) -> str:
    assert runtime.idp is not None
    account = LocalAccount(
        id=sub or uuid.uuid4(),
        email=email or f"{group.lower()}@example.com",
        full_name=group.title(),
        group_name=group,
        tenant_id=tenant_id,
    )
    return str(runtime.idp.issue_tokens(account)[f"{kind}_token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def token_for(runtime: Runtime) -> Any:
    def make(group: str, tenant_id: uuid.UUID | None = None, **kwargs: Any) -> str:
        return issue_token(runtime, group, tenant_id, **kwargs)

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(app: Any) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
