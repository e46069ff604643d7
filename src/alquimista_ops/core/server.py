"""The production ASGI server (granian) and its options, in one place: ``alquimista-ops serve``
runs the application with them, and ``bench/load.py`` serves its bare baseline app with the
very same options, so the two are measured under the same server.

Granian over uvicorn (measured on 2 cores, alternating, ``docs/performance.md``, twelfth pass):
the cached ``GET /tenant/me`` with the production access log at 0.52 x a bare Starlette endpoint
on uvicorn against 0.38 for the former uvicorn server, one worker each; the cache-off routes at
the same throughput once each worker switches the GIL every 1 ms (``configure_worker``), with
more tail on the heavier pages (p99 +10-38 % on 11 of 30 routes). It refuses request headers
over 16 KiB with 431 without reading the rest and closes a connection whose headers do not
arrive within 10 s. With two workers the kernel spreads connections between them (33/31 to
41/23 splits of 64): balancing them by hand (the former least-connections accept) gave no
better p99.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

from granian import Granian
from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.log import LogLevels

# Granian's I/O thread takes the GIL to hand each request in and each response out; at the
# interpreter's default switch interval (5 ms) it waited behind every page render. 1 ms measured
# best on the pages (2 workers, c = 64, cache off: /dashboard/usage p99 64-75 -> 46 ms,
# /company/usage 89 -> 60-69 ms, throughput +3-7 %; 0.5 and 0.2 ms no better).
WORKER_SWITCH_INTERVAL_S = 0.001
MAX_HEADER_BYTES = 16 * 1024  # request line and headers; more: 431
HEADER_TIMEOUT_MS = 10_000  # headers (and an idle keep-alive) that take longer: disconnected


def run_server(target: str, *, factory: bool, host: str, port: int, workers: int) -> None:
    """Serve the ASGI ``target`` (``module:attribute``) until SIGINT or SIGTERM; returns
    after a graceful shutdown (in-flight requests answered, the lifespan's shutdown run)."""
    if workers > 1:
        shared_metrics_dir()
    Granian(
        target,
        factory=factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.uvloop,
        backlog=2048,
        # open connections per worker, keep-alive ones included: high, as it cannot shed load
        backpressure=1024,
        http1_settings=HTTP1Settings(
            max_buffer_size=MAX_HEADER_BYTES, header_read_timeout=HEADER_TIMEOUT_MS
        ),
        log_enabled=True,
        log_level=LogLevels.warning,
        log_access=False,  # the application writes its own JSON access line
        respawn_failed_workers=True,  # one dead worker would otherwise stop the server
        workers_kill_timeout=30,  # a worker still loading the app at shutdown is not waited on
    ).serve()


def configure_worker() -> None:
    """Run in each server worker, by the application factory ``run_server`` is given."""
    sys.setswitchinterval(WORKER_SWITCH_INTERVAL_S)


# Each worker keeps up to DB_READ_CONCURRENCY (1-4) connections for its reads and twice
# DB_POOL_SIZE (10) for writes: 4 workers stay within PostgreSQL's default max_connections
# (100). More with WEB_CONCURRENCY (and the connections to match).
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
