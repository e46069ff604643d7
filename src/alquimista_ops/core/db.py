"""The database connections: the synchronous engine of transactions (psycopg) and the
event-loop reads (asyncpg, ``core.reads``), both on PostgreSQL.

All tables are defined without a schema; every connection sets ``search_path`` to the
configured schema (``DB_SCHEMA``). Services receive a ``Connection`` (writes) or ``Reads``
and never commit: the caller (request dependency, CLI command, worker step) owns the
transaction.
"""

from __future__ import annotations

import re
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as exc_mod
from sqlalchemy.engine import Engine

from alquimista_ops.core.reads import ReadDatabase
from alquimista_ops.core.settings import Settings, resolve_database_url

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(name: str) -> str:
    if not _SCHEMA_RE.match(name):
        raise ValueError(f"invalid schema name: {name!r}")
    return name


def create_db_engine(settings: Settings, url: str | None = None, **kwargs: Any) -> Engine:
    """The synchronous engine (psycopg) of transactions: writes, the worker, jobs, the CLI."""
    url = url or resolve_database_url(settings)
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("max_overflow", settings.db_pool_size)
    # a ping on every checkout was one extra round trip per request (profiled); a
    # connection is pinged only when it has been idle longer than DB_PING_IDLE_SECONDS.
    kwargs.setdefault("pool_pre_ping", settings.db_ping_idle_seconds <= 0)
    engine = sa.create_engine(url, **kwargs)
    _postgres_sessions(engine, settings)
    return engine


def create_read_database(settings: Settings, engine: Engine) -> ReadDatabase:
    """The event-loop reads (``core.reads``) on the same database as ``engine``."""
    url, connect_args = asyncpg_url(engine.url)
    return ReadDatabase(
        url.render_as_string(hide_password=False),
        schema=validate_schema_name(settings.db_schema),
        concurrency=read_concurrency(settings, engine.url),
        connect_args=connect_args,
    )


_LOCAL_HOSTS = {None, "", "localhost", "::1"}


def read_concurrency(settings: Settings, url: sa.URL) -> int:
    """How many event-loop reads one server worker runs at once: ``DB_READ_CONCURRENCY``, else
    1 when PostgreSQL runs on this machine (loopback address or Unix socket) and 4 when it
    does not.

    On the same machine PostgreSQL shares the CPUs with the server's workers: more reads in
    flight only made each one wait longer, and unevenly (measured on 2 cores, 2 workers,
    concurrency 64, same throughput: a tenant's agents p99 470 ms with 6 reads per worker,
    126-142 ms with 4, 99 ms with 2; the tenant list 218 ms with 3, 107 ms with 2, 91 ms with
    1). A remote database keeps each read's connection for a network round trip as well, so
    a worker needs a few in flight to keep its CPU busy."""
    if settings.db_read_concurrency is not None:
        return settings.db_read_concurrency
    host = url.host or str(url.query.get("host") or "")
    return 1 if host in _LOCAL_HOSTS or host.startswith(("127.", "/")) else 4


def asyncpg_url(url: sa.URL) -> tuple[sa.URL, dict[str, Any]]:
    """``url`` (any PostgreSQL driver) as a plain ``postgresql://`` URL for asyncpg, and its
    ``connect()`` arguments: libpq's ``sslmode`` and ``connect_timeout`` become asyncpg's
    ``ssl`` and ``timeout``."""
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    if "sslmode" in query:
        connect_args["ssl"] = query.pop("sslmode")
    if "connect_timeout" in query:
        connect_args["timeout"] = float(str(query.pop("connect_timeout")))
    return url.set(drivername="postgresql", query=query), connect_args


def _postgres_sessions(engine: Engine, settings: Settings, *session_sql: str) -> None:
    """Every new connection sets the ``search_path`` (and runs ``session_sql``); idle ones
    are pinged before use."""
    schema = validate_schema_name(settings.db_schema)
    if settings.db_ping_idle_seconds > 0:
        _ping_when_idle(engine, settings.db_ping_idle_seconds)
    statements = (f'SET search_path TO "{schema}", public', *session_sql)

    @event.listens_for(engine, "connect")
    def _set_search_path(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        dbapi_conn.autocommit = autocommit


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling for connections that sat idle: before such a
    connection is handed out it runs ``SELECT 1``; a dead one is replaced (SQLAlchemy retries
    the checkout with a fresh connection), so a database restart is not seen by requests."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            with dbapi_conn.cursor() as cur:
                cur.execute("SELECT 1")
            dbapi_conn.autocommit = autocommit
        except Exception as exc:
            raise exc_mod.DisconnectionError(f"idle connection is gone: {exc}") from exc
