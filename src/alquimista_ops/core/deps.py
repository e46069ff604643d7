"""The unit of work of writes: ``DbDep``, one transaction per request, committed before the
answer is sent.

A request's transaction is guarded by a per-event-loop semaphore sized to the connection pool.
Sync dependencies and routes run in anyio's thread pool (40 threads); a request holds its
connection across several thread hops (open, route, commit). With a plain sync ``get_db``, 64
concurrent requests let 40 threads block in the pool's checkout while the 20 connections
belonged to requests waiting for a thread: every request then waited for the pool timeout
(profiled: 5 requests/s). With the gate, a request only asks the pool for a connection when
one is free, so no thread ever waits for the pool, and the others wait on the event loop
without holding anything. Reads take the event loop's own connections (``core.reads``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

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
async def gated_transaction(engine: Engine) -> AsyncIterator[Connection]:
    """One transaction (commit on success, roll back on any error) taken through the gate."""
    async with connection_gate(engine):
        conn = await run_in_threadpool(_open, engine)
        try:
            yield conn
        except BaseException:
            await run_in_threadpool(_finish, conn, False)
            raise
        await run_in_threadpool(_finish, conn, True)


async def get_db(request: Request) -> AsyncIterator[Connection]:
    """The request's unit of work: commit on success, roll back on any error."""
    # the runtime is read off the app, not through a sub-dependency: each costs FastAPI's
    # resolution on every request (profiled).
    async with gated_transaction(request.app.state.runtime.engine) as conn:
        yield conn


# scope="function": the transaction commits before the response is sent, so a client that
# got the answer reads what it wrote (FastAPI otherwise exits it after sending).
DbDep = Annotated[Connection, Depends(get_db, scope="function")]
