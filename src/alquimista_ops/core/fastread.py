"""Read statements run straight on asyncpg, past SQLAlchemy's execution layer.

The server's event-loop reads (``core.deps.read_db``) run the unchanged synchronous query
functions on SQLAlchemy's facade of an asyncpg connection. Through that facade a statement
cost about twice asyncpg's own client CPU (profiled in-process: the execution context, the
adapted cursor and the result's rows), and the read routes run one to eight statements per
request. ``FastReads`` stands in for the ``Connection`` those functions receive: a ``SELECT``
built once (a module constant, a cached builder's) is compiled once for asyncpg, then runs as
that SQL through asyncpg's own prepared-statement cache, and its rows come back as named tuples
that behave as SQLAlchemy's rows do for the read functions (attribute, index and ``_mapping``
access, tuple equality).

Values go through the same processing as SQLAlchemy's: each statement's bind processors and
bound defaults on the way in; on the way out, each column's result processor for the type
PostgreSQL reports for it. Anything else (text SQL, expanding ``IN`` lists, escaped parameter
names, several parameter sets, execution options) runs on the wrapped SQLAlchemy
``Connection`` unchanged, and so does a statement after any driver error: a read is safe to
run again, and SQLAlchemy then raises its own error and invalidates a broken connection as it
always did.
"""

from __future__ import annotations

import collections
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.selectable import CompoundSelect, Select
from sqlalchemy.util import await_only

_MISSING: Any = object()
_UNPLANNED: Any = object()  # seen once: planned the second time it runs


class _Bind(NamedTuple):
    name: str
    default: Any  # _MISSING: the caller must give it
    process: Callable[[Any], Any] | None


class _Plan:
    """A statement compiled for asyncpg: its SQL and positional parameters and, once it has
    run, its row type and result processors (they depend on the types PostgreSQL reports)."""

    __slots__ = ("binds", "compiled", "processors", "row_type", "sql")

    def __init__(self, sql: str, binds: tuple[_Bind, ...], compiled: Any) -> None:
        self.sql = sql
        self.binds = binds
        self.compiled = compiled
        self.row_type: Any = None  # a namedtuple class
        self.processors: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    def args(self, params: Mapping[str, Any]) -> list[Any] | None:
        """The positional values for ``params``; None when one is missing (SQLAlchemy then
        raises its own error for it)."""
        args = []
        for bind in self.binds:
            value = params.get(bind.name, bind.default)
            if value is _MISSING:
                return None
            args.append(value if bind.process is None else bind.process(value))
        return args

    def describe(self, driver: Any, dialect: Dialect) -> bool:
        """The row type and result processors from the columns PostgreSQL reports for the
        SQL; False when they do not line up one to one with the statement's."""
        attributes = await_only(driver.prepare(self.sql)).get_attributes()
        columns = self.compiled._result_columns
        if len(columns) != len(attributes):
            return False
        processors = []
        for index, (attribute, column) in enumerate(zip(attributes, columns, strict=True)):
            process = column.type._cached_result_processor(dialect, attribute.type.oid)
            if process is not None:
                processors.append((index, process))
        self.processors = tuple(processors)
        self.row_type = _row_type([attribute.name for attribute in attributes])
        return True

    def rows(self, records: list[Any]) -> list[Any]:
        # tuple.__new__ straight, not the named tuple's ``_make`` (one Python call less per row)
        row_type, new = self.row_type, tuple.__new__
        if not self.processors:
            return [new(row_type, record) for record in records]
        rows = []
        for record in records:
            values = list(record)
            for index, process in self.processors:
                values[index] = process(values[index])
            rows.append(new(row_type, values))
        return rows


Planned = Select[Any] | CompoundSelect[Any]
_plans: weakref.WeakKeyDictionary[Planned, Any] = weakref.WeakKeyDictionary()


def _plan(stmt: Planned, dialect: Dialect) -> _Plan | None:
    """The plan of ``stmt``, made the second time the same statement object runs: the read
    routes' statements are built once, while one built for a single call would be compiled
    for nothing (SQLAlchemy's compiled cache serves those). Weakly keyed: a statement's plan
    goes with it."""
    plan = _plans.get(stmt, _MISSING)
    if plan is _MISSING:
        _plans[stmt] = _UNPLANNED
        return None
    if plan is _UNPLANNED:
        plan = _plans[stmt] = _compile(stmt, dialect)
    return plan


def planned_statements() -> int:
    """How many statements run on the fast path (for tests and diagnostics)."""
    return sum(isinstance(plan, _Plan) for plan in list(_plans.values()))


def _compile(stmt: Planned, dialect: Dialect) -> _Plan | None:
    compiled: Any = stmt.compile(dialect=dialect)
    if (
        not compiled.positional
        or compiled.post_compile_params
        or compiled.literal_execute_params
        or compiled.escaped_bind_names
    ):
        return None
    by_name = {name: bind for bind, name in compiled.bind_names.items()}
    processors = compiled._bind_processors
    binds = []
    for name in compiled.positiontup:
        bind = by_name[name]
        process = processors.get(name)
        if bind.callable is not None or isinstance(process, tuple):
            return None
        binds.append(_Bind(name, _MISSING if bind.required else bind.value, process))
    return _Plan(str(compiled), tuple(binds), compiled)


def _row_type(names: Sequence[str]) -> Any:
    row: Any = cast(Any, collections.namedtuple)("Row", names, rename=True)

    def _mapping(self: tuple[Any, ...]) -> dict[str, Any]:
        return dict(zip(names, self, strict=True))

    row._mapping = property(_mapping)
    return row


class FastResult:
    """The part of SQLAlchemy's ``Result`` the read functions use, over fetched rows."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> FastResult:
        return FastResult([row[0] for row in self._rows])

    def mappings(self) -> FastResult:
        return FastResult([row._mapping for row in self._rows])


Call = tuple[Executable, Mapping[str, Any]]  # a statement and its parameters
_PARAMETER = re.compile(r"\$(\d+)")
_batches: dict[tuple[str, ...], str] = {}  # the parts' SQL -> the batch's SQL


def _renumber(sql: str, offset: int) -> str:
    """``sql`` with its parameters ``$n`` as ``$(n + offset)``."""
    return _PARAMETER.sub(lambda match: f"${int(match.group(1)) + offset}", sql)


def _batch_sql(plans: Sequence[_Plan]) -> str | None:
    """One statement answering every plan, one row: for each plan, an array per column of
    its rows (``array_agg`` over the plan's SQL as a subquery, in its order; NULL for no row).
    Typed arrays decode in asyncpg's C loops (an array of anonymous records looked each
    field's codec up per row: measured slower for plans of many rows). None when a plan's SQL
    has a ``$n`` that is not one of its parameters (renumbering would break it)."""
    key = tuple(plan.sql for plan in plans)
    sql = _batches.get(key)
    if sql is None:
        parts, offset = [], 0
        for index, plan in enumerate(plans):
            numbers = {int(n) for n in _PARAMETER.findall(plan.sql)}
            if numbers != set(range(1, len(plan.binds) + 1)):
                return None
            names = [f"c{i}" for i in range(len(plan.row_type._fields))]
            columns = ", ".join(f"array_agg(q.{name})" for name in names)
            parts.append(
                f"(SELECT {columns} FROM ({_renumber(plan.sql, offset)}) AS q({', '.join(names)}))"
                f" AS p{index}"
            )
            offset += len(plan.binds)
        sql = _batches[key] = "SELECT * FROM " + " CROSS JOIN ".join(parts)
    return sql


def prefetch(conn: Connection, calls: Sequence[Call]) -> None:
    """Run ``calls`` in one round trip where ``conn`` is an event-loop read's (``FastReads``);
    the same statement with the same parameters then answers from those rows, once. Elsewhere
    (SQLite, psycopg, fast reads off) nothing happens and each statement runs when executed.
    A route that knows the statements of its services lists them here (each query module's
    ``*_call`` builders give the statement and parameters its query function runs)."""
    if isinstance(conn, FastReads):
        conn.prefetch(calls)


class FastReads:
    """The ``Connection`` of an event-loop read (see the module docstring); runs inside
    SQLAlchemy's ``run_sync`` greenlet, so it can wait on asyncpg's coroutines."""

    __slots__ = ("_conn", "_driver", "_ready")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._driver: Any = conn.connection.driver_connection  # the asyncpg connection
        self._ready: list[tuple[Any, Mapping[str, Any], FastResult]] = []

    def prefetch(self, calls: Sequence[Call]) -> None:
        """See ``prefetch``. A statement not planned yet (first run, or not eligible) or
        whose arguments are missing is left out; any failure leaves them all out (each then
        runs on its own, and raises its own error)."""
        dialect = self._conn.dialect
        batch: list[tuple[tuple[Planned, Mapping[str, Any]], _Plan, list[Any]]] = []
        for stmt, params in calls:
            if not isinstance(stmt, Select | CompoundSelect) or self._is_ready(stmt, params):
                continue  # not batchable; or already prefetched (a caller listed it too)
            plan = _plan(stmt, dialect)
            args = None if plan is None else plan.args(params)
            if plan is not None and args is not None:
                batch.append(((stmt, params), plan, args))
        if len(batch) < 2:
            return
        try:
            for (stmt, _params), plan, _args in batch:
                if plan.row_type is None and not plan.describe(self._driver, dialect):
                    _plans[stmt] = None
                    return
            sql = _batch_sql([plan for _call, plan, _args in batch])
            if sql is None:
                return
            values = [value for _call, _plan, args in batch for value in args]
            record = await_only(self._driver.fetchrow(sql, *values))
        except Exception:
            return  # each statement runs on its own
        start = 0
        for (stmt, params), plan, _args in batch:
            end = start + len(plan.row_type._fields)
            columns = record[start:end]
            start = end
            rows = [] if columns[0] is None else list(zip(*columns, strict=True))
            self._ready.append((stmt, params, FastResult(plan.rows(rows))))

    @property
    def dialect(self) -> Dialect:
        return self._conn.dialect

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def _is_ready(self, stmt: Any, params: Mapping[str, Any]) -> bool:
        return any(ready is stmt and got == params for ready, got, _result in self._ready)

    def unused_prefetches(self) -> int:
        """Prefetched answers no statement took (the route's list and its services differ:
        a wasted part of the round trip, never a wrong answer)."""
        return len(self._ready)

    def execute(self, stmt: Any, parameters: Any = None, **kw: Any) -> Any:
        if self._ready and not kw:
            for index, (ready, params, result) in enumerate(self._ready):
                if ready is stmt and params == (parameters or {}):
                    del self._ready[index]
                    return result
        plan = None
        if not kw and isinstance(stmt, Select | CompoundSelect):
            plan = _plan(stmt, self._conn.dialect)
        if plan is None or not (parameters is None or isinstance(parameters, Mapping)):
            return self._conn.execute(stmt, parameters, **kw)
        args = plan.args(parameters or {})
        if args is None:
            return self._conn.execute(stmt, parameters)
        try:
            if plan.row_type is None and not plan.describe(self._driver, self._conn.dialect):
                _plans[stmt] = None
                return self._conn.execute(stmt, parameters)
            records = await_only(self._driver.fetch(plan.sql, *args))
        except Exception:
            # SQLAlchemy's error (and a lost connection invalidated): run it through SQLAlchemy
            return self._conn.execute(stmt, parameters)
        return FastResult(plan.rows(records))

    def scalar(self, stmt: Any, parameters: Any = None, **kw: Any) -> Any:
        return self.execute(stmt, parameters, **kw).scalar()
