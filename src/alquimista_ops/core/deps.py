"""FastAPI dependencies shared by every feature: runtime and the unit of work.

Reads (``read_db``) take a pooled connection only while their queries run: on PostgreSQL in
autocommit (READ COMMITTED gives every statement its own snapshot anyway, so a BEGIN and a
COMMIT were two round trips that bought nothing — profiled), on SQLite in one transaction.
Under the server (``async_reads``, opened by its lifespan) PostgreSQL reads run on the event
loop; elsewhere in one thread-pool hop. A read answered from the cache takes no connection.

The unit of work of writes is an *async* dependency guarded by a per-event-loop semaphore sized
to the connection pool; thread-pool reads pass through the same gate, except under the server,
where every read waits in the event-loop reads' own line (``read_gate``,
``DB_READ_CONCURRENCY``). Sync dependencies and routes run in
anyio's thread pool (40 threads); a request holds its connection across several thread hops
(open, route, commit). With a plain sync ``get_db``, 64 concurrent requests let 40 threads block
in the pool's checkout while the 20 connections belonged to requests waiting for a thread:
every request then waited for the pool timeout (profiled: 5 requests/s). With the gate, a
request only asks the pool for a connection when one is free, so no thread ever waits for the
pool, and the others wait on the event loop without holding anything.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Request
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.concurrency import run_in_threadpool

from alquimista_ops.core.db import create_async_read_engine, read_concurrency
from alquimista_ops.core.fastread import FastReads
from alquimista_ops.core.runtime import Runtime
from alquimista_ops.core.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


async def get_runtime(request: Request) -> Runtime:
    # async: a trivial dependency must not cost a thread-pool hop.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def pool_capacity(engine: Engine) -> int:
    """How many requests may hold a connection at once: the pool's size (its overflow stays
    for the other users of the engine; overflow connections are closed on return, so letting
    requests use them made every request open a new PostgreSQL connection — profiled)."""
    size = getattr(engine.pool, "size", None)
    if callable(size) and int(size()) > 0:
        return int(size())
    return 8


def connection_gate(engine: Engine) -> asyncio.Semaphore:
    """The semaphore of this event loop for ``engine`` (one per loop: test clients and server
    workers each run their own loop)."""
    loop = asyncio.get_running_loop()
    per_loop = _gates.setdefault(loop, {})
    gate = per_loop.get(id(engine))
    if gate is None:
        gate = per_loop[id(engine)] = asyncio.Semaphore(pool_capacity(engine))
    return gate


class LazyConnection:
    """Stands for the request's ``Connection`` and checks one out on first use, so a read
    answered from the cache without a query never touches the pool (profiled: the checkout,
    BEGIN and COMMIT of an unused connection were most of a cached read's time)."""

    __slots__ = ("_conn", "_engine")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None

    @property
    def dialect(self) -> Any:
        return self._engine.dialect

    @property
    def opened(self) -> Connection | None:
        return self._conn

    def __getattr__(self, name: str) -> Any:
        conn = self._conn
        if conn is None:
            conn = self._conn = _open(self._engine)
        return getattr(conn, name)


def _open(engine: Engine) -> Connection:
    conn = engine.connect()
    try:
        conn.begin()
    except BaseException:
        conn.close()
        raise
    return conn


def _finish(conn: Connection, commit: bool) -> None:
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        conn.close()


@asynccontextmanager
async def gated_transaction(
    engine: Engine, after_commit: Callable[[], None] | None = None
) -> AsyncIterator[Connection]:
    """One transaction (commit on success, roll back on any error) taken through the gate."""
    async with connection_gate(engine):
        lazy = LazyConnection(engine)
        try:
            yield cast(Connection, lazy)
        except BaseException:
            if lazy.opened is not None:
                await run_in_threadpool(_finish, lazy.opened, False)
            raise
        if lazy.opened is not None:
            await run_in_threadpool(_finish, lazy.opened, True)
    if after_commit is not None:
        after_commit()


_read_engines: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()


def read_engine(engine: Engine) -> Engine:
    """``engine`` with autocommit connections on PostgreSQL (same pool), else ``engine``."""
    if engine.dialect.name != "postgresql":
        return engine
    reader = _read_engines.get(engine)
    if reader is None:
        reader = _read_engines[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return reader


def run_read(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """``fn(conn)`` on a read connection (see the module docstring), in this thread."""
    reader = read_engine(engine)
    if reader is engine:
        with engine.begin() as conn:
            return fn(conn)
    with reader.connect() as conn:
        return fn(conn)


@dataclass(frozen=True, slots=True)
class _AsyncReader:
    engine: AsyncEngine
    gate: asyncio.Semaphore  # admits as many reads as the engine has connections
    fast: bool  # statements straight on asyncpg (core.fastread)


_async_readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _AsyncReader]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def async_reads(settings: Settings, engine: Engine) -> AsyncIterator[None]:
    """While open, ``read_db`` on ``engine`` from this event loop runs on the event loop
    (``core.db.create_async_read_engine``; PostgreSQL only), ``core.db.read_concurrency``
    reads at a time. The server's lifespan opens it; elsewhere (CLI, Lambda, test clients without a
    lifespan) reads take the thread pool."""
    if engine.dialect.name != "postgresql" or not settings.db_async_reads:
        yield
        return
    loop = asyncio.get_running_loop()
    async_engine = create_async_read_engine(settings, engine)
    reader = _AsyncReader(
        async_engine,
        asyncio.Semaphore(read_concurrency(settings, engine.url)),
        fast=settings.db_fast_reads,
    )
    _async_readers.setdefault(loop, {})[id(engine)] = reader
    try:
        yield
    finally:
        _async_readers.get(loop, {}).pop(id(engine), None)
        await async_engine.dispose()


def _async_reader(engine: Engine) -> _AsyncReader | None:
    per_loop = _async_readers.get(asyncio.get_running_loop())
    return per_loop.get(id(engine)) if per_loop else None


def reads_on_event_loop(engine: Engine) -> bool:
    """Whether ``read_db`` on ``engine`` runs on this event loop (``async_reads`` is open)."""
    return _async_reader(engine) is not None


def read_gate(engine: Engine) -> asyncio.Semaphore:
    """The gate of reads on ``engine`` from this event loop: the event-loop reads' one where
    ``async_reads`` is open (the server), so reads that still take the thread pool (cache
    misses while the cache is in trouble, ``other_io``) count against the same
    ``core.db.read_concurrency``; else the pool's (``connection_gate``)."""
    reader = _async_reader(engine)
    return reader.gate if reader is not None else connection_gate(engine)


async def read_db(engine: Engine, fn: Callable[[Connection], T], *, other_io: bool = False) -> T:
    """``fn(conn)`` on a read connection: on the event loop where ``async_reads`` is open
    (``fn`` runs unchanged on SQLAlchemy's synchronous facade of the async connection, which
    ``core.fastread.FastReads`` wraps unless ``DB_FAST_READS`` is off), else in the thread
    pool. Both through a gate: its semaphore admits waiters in order, while the
    async pool's queue lets a newcomer take a returned connection before the waiter it was
    meant for wakes up (measured, 2 workers, concurrency 64: p99 340-630 ms without the gate,
    83-109 ms with it, for the same throughput).

    On the event loop the gate admits as many reads as the loop's engine has connections
    (``core.db.read_concurrency``). ``other_io``: ``fn`` also does blocking I/O of its own
    (DynamoDB through boto3, say), so it always takes the thread pool."""
    reader = None if other_io else _async_reader(engine)
    if reader is not None:
        async with reader.gate, _connect(reader.engine) as conn:
            if reader.fast:
                return await conn.run_sync(_fast_reads, fn)
            return await conn.run_sync(fn)
    async with read_gate(engine):
        return await run_in_threadpool(run_read, engine, fn)


def _fast_reads(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """``fn`` on ``conn`` with its prebuilt statements run straight on asyncpg."""
    reads = FastReads(conn)
    result = fn(cast(Connection, reads))
    unused = reads.unused_prefetches()
    if unused:  # a route listed statements (or parameters) its services did not run
        log.warning("prefetched statements not run", extra={"statements": unused})
    return result


@asynccontextmanager
async def _connect(async_engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A pooled connection of ``async_engine``. asyncpg's own failures to connect (refused,
    timed out) reach SQLAlchemy's callers as plain ``OSError``: they become the
    ``OperationalError`` every other "database unavailable" path raises (a 503)."""
    conn = async_engine.connect()
    try:
        await conn.start()
    except OSError as exc:
        raise OperationalError("connect", None, exc) from exc
    try:
        yield conn
    finally:
        await conn.close()


async def get_db(request: Request) -> AsyncIterator[Connection]:
    """The request's unit of work: commit on success, roll back on any error."""
    # the runtime is read off the app, not through RuntimeDep: each sub-dependency costs
    # FastAPI's resolution on every request (profiled).
    async with gated_transaction(request.app.state.runtime.engine) as conn:
        yield conn


# scope="function": the transaction commits before the response is sent, so a client that
# got the answer reads what it wrote (FastAPI otherwise exits it after sending).
DbDep = Annotated[Connection, Depends(get_db, scope="function")]
