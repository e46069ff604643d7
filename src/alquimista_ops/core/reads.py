"""The read path: every read statement is a ``Query``, declared once; a request's reads run on
its event loop through asyncpg, and statements issued together go in one round trip.

- ``Query(select)`` wraps a SQLAlchemy Core ``SELECT`` built once (a module constant, or a
  ``functools.cache``d builder keyed by the statement's shape). It is compiled once for
  asyncpg with SQLAlchemy's public compiler API (``str(compiled)``, ``compiled.positiontup``,
  ``compiled.binds``). The same declaration runs on a synchronous SQLAlchemy connection
  (``query.execute(conn, **params)``) inside a write transaction.
- ``ReadDatabase`` keeps one asyncpg pool per event loop (a server worker, a test client, a
  Lambda container) with ``DB_READ_CONCURRENCY`` connections behind a first-come-first-served
  gate. Its sessions use generic plans (``plan_cache_mode``): planning the read routes'
  statements cost PostgreSQL more than running them.
- ``Reads`` is one request's session: ``await reads.all(QUERY, **params)`` (``first``,
  ``one``, ``scalar``). The statements of coroutines run by ``reads.gather(...)`` (a
  service's independent statements, a page's services) are sent as one statement that
  answers each of them as arrays of its columns (``_batch_sql``); a lone statement is sent as
  it is. A connection is taken at the first statement and given back when the session ends.

Errors: a connection that cannot be opened raises ``DatabaseUnavailable`` (503) at once. A
statement whose connection broke before it answered (a server restart, a connection dropped
while idle) is run once more on a new connection: a read may safely run again. A statement
timeout is a 503 too, never run again; any other error PostgreSQL reports is raised as it is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import asyncpg
import orjson
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.sql.selectable import CompoundSelect, Select

from alquimista_ops.core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

Statement = Select[*tuple[Any, ...]] | CompoundSelect[*tuple[Any, ...]]
_DIALECT = asyncpg_dialect.dialect()
_MISSING: Any = object()
_PARAMETER = re.compile(r"\$(\d+)")


class _Bind(NamedTuple):
    name: str
    default: Any  # _MISSING: the caller gives it


class Query:
    """One read statement, declared once (see the module docstring)."""

    __slots__ = ("_binds", "_row", "sql", "statement")

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        compiled = statement.compile(dialect=_DIALECT)
        if compiled.positiontup is None or "POSTCOMPILE" in str(compiled):
            raise ValueError("a Query takes a statement with plain bound parameters")
        self.sql = str(compiled)
        if self.sql.count("$") != len(_PARAMETER.findall(self.sql)):
            raise ValueError("a Query's SQL holds a '$' that is not a parameter")
        binds = []
        for name in compiled.positiontup:
            bind = compiled.binds[name]
            binds.append(_Bind(bind.key, _MISSING if bind.required else bind.effective_value))
        self._binds = tuple(binds)
        self._row: Any = None  # the row type, from the columns PostgreSQL describes (first run)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional values of ``params`` (a ``TypeError`` names a missing one)."""
        args = []
        for name, default in self._binds:
            value = params.get(name, default)
            if value is _MISSING:
                raise TypeError(f"missing value for bind parameter {name!r}")
            args.append(value)
        return args

    def execute(self, conn: Connection, **params: Any) -> CursorResult[Any]:
        """The statement on a synchronous connection (a write transaction's)."""
        return conn.execute(self.statement, params)

    @property
    def described(self) -> bool:
        return self._row is not None

    def describe(self, attributes: Sequence[Any]) -> None:
        self._row = _row_type([attribute.name for attribute in attributes])

    @property
    def parameters(self) -> int:
        return len(self._binds)

    @property
    def width(self) -> int:
        return len(self._row._fields)

    def rows(self, records: Sequence[Any]) -> list[Any]:
        """``records`` (tuples of values in column order) as rows: named tuples, read as
        SQLAlchemy's rows are (``row.name``, ``row[0]``, ``row._asdict()``)."""
        row, new = self._row, tuple.__new__
        return [new(row, record) for record in records]


def _row_type(names: Sequence[str]) -> Any:
    return collections.namedtuple("Row", names, rename=True)


class _Pending(NamedTuple):
    query: Query
    args: list[Any]
    future: asyncio.Future[list[Any]]


@dataclass(frozen=True, slots=True)
class _LoopReads:
    pool: asyncpg.Pool
    ready: asyncio.Future[Any]  # the pool's initialisation
    gate: asyncio.Semaphore  # first come, first served; as many as the pool has connections


class ReadDatabase:
    """The read connections of one process: an asyncpg pool per event loop, created at its
    first read (see the module docstring)."""

    def __init__(
        self, dsn: str, *, schema: str, concurrency: int, connect_args: Mapping[str, Any]
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.concurrency = concurrency
        self.connect_args = dict(connect_args)
        self.query_loggers: list[Callable[[Any], None]] = []
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopReads] = (
            weakref.WeakKeyDictionary()
        )

    def _for_loop(self) -> _LoopReads:
        loop = asyncio.get_running_loop()
        reads = self._loops.get(loop)
        if reads is None:
            pool = asyncpg.create_pool(
                self.dsn,
                min_size=0,
                max_size=self.concurrency,
                init=self._init_connection,
                reset=_keep_session,  # reads change no session state: no reset round trip
                server_settings={
                    "search_path": f'"{self.schema}", public',
                    "plan_cache_mode": "force_generic_plan",
                },
                **self.connect_args,
            )
            ready = asyncio.ensure_future(_initialised(pool))
            reads = _LoopReads(pool, ready, asyncio.Semaphore(self.concurrency))
            self._loops[loop] = reads
        return reads

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Reads]:
        """One request's reads (see ``Reads``)."""
        reads = Reads(self._for_loop())
        try:
            yield reads
        finally:
            await reads.close()

    async def close(self) -> None:
        """Close this event loop's pool (the server's lifespan, at shutdown)."""
        reads = self._loops.pop(asyncio.get_running_loop(), None)
        if reads is not None:
            await reads.ready
            await reads.pool.close()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        for name in ("json", "jsonb"):
            await conn.set_type_codec(
                name,
                encoder=lambda value: orjson.dumps(value).decode(),
                decoder=orjson.loads,
                schema="pg_catalog",
            )
        # asyncpg's query loggers (each statement sent, with its arguments and duration):
        # for benchmarks and tests; given before the connections open
        for logger in self.query_loggers:
            conn.add_query_logger(logger)


async def _initialised(pool: asyncpg.Pool) -> None:
    await pool  # min_size=0: opens no connection


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """A read session leaves its connection as it found it (no SET, LISTEN, lock or cursor):
    asyncpg's default reset on release would cost a round trip per session."""


# a connection that could not be opened (nothing to retry at once)
_UNREACHABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,  # CannotConnectNowError, TooManyConnectionsError, …
)
# a connection that broke: the statement may run again on a new one
_LOST = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


class Reads:
    """One request's reads on a connection of its event loop's pool (``ReadDatabase.session``)."""

    def __init__(self, loop_reads: _LoopReads) -> None:
        self._loop_reads = loop_reads
        self._conn: asyncpg.Connection | None = None
        self._holds_gate = False
        self._pending: list[_Pending] | None = None  # the statements of the round collected
        self._gathering = 0  # inside ``gather``
        self._progress = 0  # statements queued and gathers entered: the leader waits while it grows
        self._lock = asyncio.Lock()  # one round trip at a time on the connection
        self._closed = False

    async def all(self, query: Query, /, **params: Any) -> list[Any]:
        return await self._fetch(query, query.args(params))

    async def first(self, query: Query, /, **params: Any) -> Any:
        rows = await self._fetch(query, query.args(params))
        return rows[0] if rows else None

    async def one(self, query: Query, /, **params: Any) -> Any:
        rows = await self._fetch(query, query.args(params))
        if len(rows) != 1:
            raise LookupError(f"expected one row, got {len(rows)}")
        return rows[0]

    async def scalar(self, query: Query, /, **params: Any) -> Any:
        rows = await self._fetch(query, query.args(params))
        return rows[0][0] if rows else None

    async def gather(self, *reads: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
        """``asyncio.gather(*reads)`` whose statements go in as few round trips as they allow
        (see ``_fetch``). It returns once every read is done, also when one failed (then it
        raises the first error, unless ``return_exceptions``): no read outlives the session."""
        self._gathering += 1
        self._progress += 1
        try:
            results = await asyncio.gather(*reads, return_exceptions=True)
        finally:
            self._gathering -= 1
        if not return_exceptions:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return list(results)

    async def _fetch(self, query: Query, args: list[Any]) -> list[Any]:
        """Run the statement, in one round trip with those of the same round: inside
        ``gather``, the first statement (the leader) lets the other coroutines run until they
        add no more statements and enter no more gathers, then sends them all."""
        if self._closed:
            raise RuntimeError("a read after its session ended")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._progress += 1
        if self._pending is not None:
            self._pending.append(_Pending(query, args, future))
            return await future
        batch = self._pending = [_Pending(query, args, future)]
        try:
            try:
                seen = -1
                while self._gathering and seen != self._progress:  # others still arriving
                    seen = self._progress
                    await asyncio.sleep(0)
            finally:
                self._pending = None
            async with self._lock:
                await self._run(batch)
        except BaseException as exc:
            for item in batch:
                if item.future is not future and not item.future.done():
                    item.future.set_exception(exc)
            raise
        return future.result()

    async def _run(self, batch: list[_Pending]) -> None:
        for attempt in (1, 2):
            try:
                conn = await self._connection()
            except _UNREACHABLE as exc:
                log.warning("database unreachable for a read: %r", exc)
                raise DatabaseUnavailable("The database is unavailable; try again shortly") from exc
            try:
                await self._send(conn, batch)
                return
            except asyncpg.QueryCanceledError as exc:  # a statement timeout: never run again
                log.warning("read cancelled: %s", exc)
                raise DatabaseUnavailable("The database is busy; try again shortly") from exc
            except _LOST as exc:
                await self._discard()
                if attempt == 2:
                    log.warning("database connection lost twice for a read: %r", exc)
                    raise DatabaseUnavailable(
                        "The database is unavailable; try again shortly"
                    ) from exc

    @staticmethod
    async def _send(conn: asyncpg.Connection, batch: list[_Pending]) -> None:
        for item in batch:
            if not item.query.described:
                item.query.describe((await conn.prepare(item.query.sql)).get_attributes())
        if len(batch) == 1:
            item = batch[0]
            item.future.set_result(item.query.rows(await conn.fetch(item.query.sql, *item.args)))
            return
        record = await conn.fetchrow(
            _batch_sql([item.query for item in batch]),
            *(value for item in batch for value in item.args),
        )
        _answer(batch, record)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None:
            reads = self._loop_reads
            if not self._holds_gate:
                await reads.gate.acquire()
                self._holds_gate = True
            await reads.ready
            self._conn = await reads.pool.acquire()
        return self._conn

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # already given back by asyncpg when it broke while idle: nothing left to end
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            await self._loop_reads.pool.release(conn)

    async def close(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await self._loop_reads.pool.release(conn)
        finally:
            if self._holds_gate:
                self._holds_gate = False
                self._loop_reads.gate.release()


def _answer(batch: list[_Pending], record: Any) -> None:
    start = 0
    for item in batch:
        end = start + item.query.width
        columns = record[start:end]
        start = end
        rows = [] if columns[0] is None else list(zip(*columns, strict=True))
        item.future.set_result(item.query.rows(rows))


_batches: dict[tuple[str, ...], str] = {}


def _batch_sql(queries: Sequence[Query]) -> str:
    """One statement answering every query in one row: for each, an array per column of its
    rows (``array_agg`` over the query as a subquery keeps its order; NULL for no rows). Typed
    arrays decode in asyncpg's own loops (an array of records was slower, measured)."""
    key = tuple(query.sql for query in queries)
    sql = _batches.get(key)
    if sql is None:
        parts, offset = [], 0
        for index, query in enumerate(queries):
            names = [f"c{i}" for i in range(query.width)]
            columns = ", ".join(f"array_agg(q.{name})" for name in names)
            parts.append(
                f"(SELECT {columns} FROM ({_renumber(query.sql, offset)}) AS q({', '.join(names)}))"
                f" AS p{index}"
            )
            offset += query.parameters
        sql = _batches[key] = "SELECT * FROM " + " CROSS JOIN ".join(parts)
    return sql


def _renumber(sql: str, offset: int) -> str:
    """``sql`` with its parameters ``$n`` as ``$(n + offset)`` (a ``Query`` holds no other
    ``$``)."""
    return _PARAMETER.sub(lambda match: f"${int(match.group(1)) + offset}", sql) if offset else sql
