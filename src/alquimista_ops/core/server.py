"""The production ASGI server (uvicorn) and its options, in one place: ``alquimista-ops serve``
runs the application with them, and ``bench/load.py`` serves its bare baseline app with the
very same options, so the two are measured under the same server settings."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

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
    config = _PerWorkerSocketConfig(
        target, factory=factory, host=host, port=port, workers=workers, **SERVER_OPTIONS
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()


def _listener(family: int, address: Any, cls: type[socket.socket] = socket.socket) -> socket.socket:
    sock = cls(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


class _PerWorkerSocket(socket.socket):
    """The supervisor's socket (bound with ``SO_REUSEPORT``, never listening). A worker that
    receives it gets a listening socket of its own on the same address instead, so the kernel
    spreads new connections over the workers. With one shared socket, whichever worker woke
    first accepted a burst of them (measured: 64 connections opened at once split 16/48 to
    35/29 between two workers, and the busier worker's requests waited up to three times
    longer)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_listener, (self.family, self.getsockname()))


class _PerWorkerSocketConfig(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        family = socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET
        try:
            sock = _listener(family, (self.host, self.port), _PerWorkerSocket)
        except OSError as exc:  # the port is taken, say: uvicorn's own message and exit
            _log.error(exc)
            sys.exit(STARTUP_FAILURE)
        _log.info("Uvicorn running on http://%s:%d (one socket per worker)", self.host, self.port)
        return sock


# Each worker keeps up to DB_READ_CONCURRENCY (1-4) connections for the reads on its event loop
# and twice DB_POOL_SIZE (10) for writes and thread-pool reads: 4 workers stay within
# PostgreSQL's default max_connections (100). More with WEB_CONCURRENCY (and the connections to
# match).
MAX_DEFAULT_WORKERS = 4


def default_workers(database_url: str) -> int:
    """Worker processes of ``serve`` when ``--workers`` is not given: ``WEB_CONCURRENCY`` if set,
    else one per CPU, at most ``MAX_DEFAULT_WORKERS``, on PostgreSQL (a worker is one event
    loop: one core at most; measured on 2 cores, cache off: 2 workers served 1.8x the requests
    of one), and one on the embedded SQLite database (one writer at a time, and the in-process
    command worker runs in each)."""
    configured = os.environ.get("WEB_CONCURRENCY", "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"WEB_CONCURRENCY must be a positive integer, not {configured!r}")
        return int(configured)
    if database_url.startswith("sqlite"):
        return 1
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
