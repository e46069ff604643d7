"""The production ASGI server (uvicorn) and its options, in one place: ``alquimista-ops serve``
runs the application with them, and ``bench/load.py`` serves its bare baseline app with the
very same options, so the two are measured under the same server settings."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import logging
import mmap
import os
import select
import shutil
import socket
import struct
import tempfile
from collections.abc import Callable
from typing import Any

import uvicorn
import uvloop

_log = logging.getLogger("uvicorn.error")

# httptools and uvloop come with uvicorn[standard]; naming them makes a missing one an error
# instead of a silent fallback to the slower pure-Python implementations.
SERVER_OPTIONS: dict[str, Any] = {
    "http": "httptools",
    "loop": "uvloop",
    "access_log": False,  # the application writes its own JSON access line
    "log_config": None,
    "proxy_headers": True,
    "backlog": 2048,
}


def run_server(target: str, *, factory: bool, host: str, port: int, workers: int) -> None:
    if workers == 1:
        uvicorn.run(target, factory=factory, host=host, port=port, **SERVER_OPTIONS)
        return
    from uvicorn.supervisors import Multiprocess

    shared_metrics_dir()
    config = _BalancedConfig(
        target, factory=factory, host=host, port=port, workers=workers, **SERVER_OPTIONS
    )
    config.counts_path = _counts_file()
    Multiprocess(config, sockets=[config.bind_socket()]).run()


# -- several workers: one listening socket, each connection to the worker with fewest ----------
# With a listening socket per worker (SO_REUSEPORT) the kernel picks a worker by a hash of the
# connection's addresses: 64 connections opened at once split anywhere from 23/41 to 32/32
# between two workers (measured), and a connection stays on its worker. The busier worker's
# requests waited longer in proportion (a trace of one load run, 38/26: p50 91 ms against
# 62 ms, and the run's p99 was the busier worker's). So the workers share one listening
# socket and accept in turn: a worker takes a waiting connection only when no other live
# worker has fewer open ones (least connections, as a load balancer would), counts kept in a
# small shared file. A worker that cannot see the others' counts accepts as uvicorn would.

_SLOTS = 64  # workers that can publish their count (more accept without balancing)
_SLOT = struct.Struct("=ii")  # (pid, open connections; -1 while not accepting)
_RECHECK_SECONDS = 0.001  # a worker with more connections looks again after this long...
_MAX_DEFER_SECONDS = 0.05  # ...and takes the connection itself once it has waited this long


def _counts_file() -> str:
    handle, path = tempfile.mkstemp(prefix="opdash-workers-")
    os.ftruncate(handle, _SLOTS * _SLOT.size)
    os.close(handle)
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class ConnectionCounts:
    """The workers' open connections, one slot each in a file every worker maps. A worker
    claims the first slot it can lock (the lock goes with the process, so a replacement
    reuses a dead worker's slot) and is the only writer of it."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, _SLOTS * _SLOT.size)
        self._ints = memoryview(self._map).cast("i")
        self.slot: int | None = None
        self._pid = os.getpid()
        for slot in range(_SLOTS):
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _SLOT.size, slot * _SLOT.size)
            except OSError:
                continue
            self.slot = slot
            self._ints[2 * slot], self._ints[2 * slot + 1] = self._pid, -1
            break
        self.open = 0

    def accepting(self) -> None:
        self._publish()

    def opened(self) -> None:
        self.open += 1
        self._publish()

    def closed(self) -> None:
        self.open -= 1
        self._publish()

    def _publish(self) -> None:
        if self.slot is not None:
            self._ints[2 * self.slot + 1] = self.open

    def fewer_elsewhere(self) -> bool:
        """Whether another live worker that accepts has fewer open connections than this one."""
        if self.slot is None:
            return False
        ints, mine = self._ints, self.open
        for slot in range(_SLOTS):
            pid, count = ints[2 * slot], ints[2 * slot + 1]
            if 0 <= count < mine and pid > 0 and slot != self.slot and _alive(pid):
                return True
        return False

    def release(self) -> None:
        if self.slot is not None:
            self._ints[2 * self.slot], self._ints[2 * self.slot + 1] = 0, -1
            self.slot = None
        self._ints.release()
        self._map.close()
        os.close(self._fd)  # and with it the slot's lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _BalancedListener:
    """Accepts connections from the shared listening socket on the event loop, when
    ``ConnectionCounts`` says it is this worker's turn, and hands each to the server's
    protocol (what ``loop.create_server`` would do). Quacks like the ``asyncio.Server``
    uvicorn closes at shutdown."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        counts: ConnectionCounts,
        backlog: int,
    ) -> None:
        self._loop, self._sock, self._factory, self._counts = loop, sock, protocol_factory, counts
        self._deferred_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.sockets = [sock]
        sock.setblocking(False)
        sock.listen(backlog)
        counts.accepting()
        loop.add_reader(sock.fileno(), self._acceptable)

    def _acceptable(self) -> None:
        if self._counts.fewer_elsewhere():
            now = self._loop.time()
            if self._deferred_since is None:
                self._deferred_since = now
            if now - self._deferred_since < _MAX_DEFER_SECONDS:
                self._pause()
                return
        self._deferred_since = None
        try:
            conn, _address = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it
        except OSError as exc:  # out of file descriptors, say: try again in a while
            _log.error("accept failed: %s", exc)
            self._pause(1.0)
            return
        self._counts.opened()  # now, not when the protocol starts: the others decide on it
        conn.setblocking(False)
        self._loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn)
        except OSError as exc:  # the client went away already
            _log.debug("connection dropped before it was served: %s", exc)
            conn.close()
            self._counts.closed()

    def _pause(self, seconds: float = _RECHECK_SECONDS) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._timer = self._loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self._timer = None
        if self._closed:
            return
        if self._deferred_since is not None and not _readable(self._sock):
            self._deferred_since = None  # someone else took it
        self._loop.add_reader(self._sock.fileno(), self._acceptable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._sock.fileno())
        self._counts.release()

    async def wait_closed(self) -> None:
        return None


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


class _BalancedLoop(uvloop.Loop):
    """uvloop, except that uvicorn's ``create_server`` on the shared socket accepts through
    ``_BalancedListener``."""

    counts: ConnectionCounts | None = None

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], *args: Any, **kwargs: Any
    ) -> Any:
        sock = kwargs.get("sock")
        if self.counts is None or sock is None or args or kwargs.get("ssl") is not None:
            return await super().create_server(protocol_factory, *args, **kwargs)
        return _BalancedListener(
            self, sock, protocol_factory, self.counts, kwargs.get("backlog") or 100
        )


class _BalancedConfig(uvicorn.Config):
    """The workers' configuration (pickled to each): ``_BalancedLoop``, and the HTTP protocol
    counting its connections."""

    counts_path: str | None = None
    _counts: ConnectionCounts | None = None

    def get_loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop] | None:
        if self.counts_path is None:
            return super().get_loop_factory()
        counts = self._counts = ConnectionCounts(self.counts_path)

        def new_loop() -> asyncio.AbstractEventLoop:
            loop = _BalancedLoop()
            loop.counts = counts
            return loop

        return new_loop

    def load(self) -> None:
        super().load()
        if self._counts is None:
            return
        counts: ConnectionCounts = self._counts
        base = self.http_protocol_class

        class Counted(base):  # type: ignore[valid-type,misc]
            # counted as opened when accepted (_BalancedListener)
            def connection_lost(self, exc: Exception | None) -> None:
                counts.closed()
                super().connection_lost(exc)

        self.http_protocol_class = Counted


# Each worker keeps up to DB_READ_CONCURRENCY (1-4) connections for the reads on its event loop
# and twice DB_POOL_SIZE (10) for writes and thread-pool reads: 4 workers stay within
# PostgreSQL's default max_connections (100). More with WEB_CONCURRENCY (and the connections to
# match).
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """Worker processes of ``serve`` when ``--workers`` is not given: ``WEB_CONCURRENCY`` if set,
    else one per CPU, at most ``MAX_DEFAULT_WORKERS`` (a worker is one event loop: one core at
    most; measured on 2 cores, cache off: 2 workers served 1.8x the requests of one)."""
    configured = os.environ.get("WEB_CONCURRENCY", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"WEB_CONCURRENCY must be a positive integer, not {configured!r}")
        return int(configured)
    return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS))


def shared_metrics_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` for the workers about to be started: the configured one, else
    a new empty directory removed at exit. Then ``GET /metrics`` sums the request series of
    every worker, whichever answers (``observability.metrics``)."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        return configured
    directory = tempfile.mkdtemp(prefix="opdash-metrics-")
    atexit.register(shutil.rmtree, directory, True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # the workers inherit it
    return directory
