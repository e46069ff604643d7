"""Helpers of the read-path tests (``core.reads``): the statements a ``ReadDatabase`` sends, seen
through asyncpg's query loggers (``Connection.add_query_logger``, public since asyncpg 0.29),
which ``ReadDatabase.query_loggers`` gives every connection it opens."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from alquimista_ops.runtime import Runtime, build_runtime
from tests.conftest import make_settings


def is_asyncpg_own(sql: str) -> bool:
    """A statement of asyncpg's own, not a read's: its introspection of a type a connection
    meets for the first time (``WITH RECURSIVE typeinfo_tree ...``, with JIT turned off around
    it). (The pool's reset of a released connection is not sent: ``core.reads``.)"""
    return "typeinfo_tree" in sql or "set_config('jit'" in sql


def is_batch(sql: str) -> bool:
    """A statement ``Reads`` built to answer several (``reads._batch_sql``)."""
    return sql.startswith("SELECT * FROM (SELECT array_agg(")


_PARAMETER = re.compile(r"\$\d+")


def sends(sql: str, query: Any) -> bool:
    """Whether the statement ``sql`` is ``query`` (a ``Query``) or a batch with it (whose
    parameters are numbered on from the statements before it)."""
    return _PARAMETER.sub("$?", query.sql) in _PARAMETER.sub("$?", sql)


class StatementLog:
    """Every statement the connections of a ``ReadDatabase`` sent (one per round trip;
    asyncpg's own left out: ``is_asyncpg_own``), in order: give it to
    ``ReadDatabase.query_loggers`` before the database opens connections.

    asyncpg calls its loggers with ``loop.call_soon`` after each statement: a statement is in
    the log once its event loop ran once more (an HTTP answer always has)."""

    def __init__(self) -> None:
        self._records: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, logged: Any) -> None:
        if is_asyncpg_own(logged.query):
            return
        with self._lock:
            self._records.append(logged)

    @property
    def records(self) -> list[Any]:
        """The ``asyncpg.connection.LoggedQuery`` records (``query``, ``args``,
        ``exception``...)."""
        with self._lock:
            return list(self._records)

    @property
    def statements(self) -> list[str]:
        return [record.query for record in self.records]

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


def logged_runtime(
    var_dir: Path, database_url: str, engine: Engine, **overrides: Any
) -> tuple[Runtime, StatementLog]:
    """A runtime of its own (settings ``overrides``) whose reads are logged."""
    runtime = build_runtime(make_settings(var_dir, database_url, **overrides), engine)
    log = StatementLog()
    runtime.reads.query_loggers.append(log)
    return runtime, log
