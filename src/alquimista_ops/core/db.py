"""Engine creation and the unit of work.

All tables are defined without a schema. On PostgreSQL every connection sets
``search_path`` to the configured schema, so the same SQL runs on both databases.
Services receive a ``Connection`` and never commit: the caller (request dependency,
CLI command, worker step) owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.core.settings import Settings, resolve_database_url

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(name: str) -> str:
    if not _SCHEMA_RE.match(name):
        raise ValueError(f"invalid schema name: {name!r}")
    return name


def create_db_engine(settings: Settings, url: str | None = None, **kwargs: Any) -> Engine:
    url = url or resolve_database_url(settings)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    schema = validate_schema_name(settings.db_schema)
    kwargs.setdefault("pool_size", settings.db_pool_size)
    kwargs.setdefault("max_overflow", settings.db_pool_size)
    kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _set_search_path(dbapi_conn: Any, _record: Any) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        with dbapi_conn.cursor() as cur:
            cur.execute(f'SET search_path TO "{schema}", public')
        dbapi_conn.autocommit = autocommit

    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy manage transactions explicitly (BEGIN emitted below).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so a transaction never fails later when a
        # read turns into a write while another process writes (busy_timeout waits instead).
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Connection]:
    """One transaction: commit on success, roll back on error."""
    with engine.begin() as conn:
        yield conn
