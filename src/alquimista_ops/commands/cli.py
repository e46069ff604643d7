"""``alquimista-ops worker``: the command worker process."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from alquimista_ops.commands.handlers import Handler
from alquimista_ops.commands.inprocess import start_scheduler_thread, stop_scheduler_thread
from alquimista_ops.commands.runtime_hooks import build_cache_hooks
from alquimista_ops.commands.worker import Worker, WorkerConfig
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.logging import configure_logging
from alquimista_ops.core.settings import Settings, get_settings
from alquimista_ops.usage.jobs import wire_usage_cache


def build_worker(
    settings: Settings,
    concurrency: int = 1,
    batch_size: int | None = None,
    handlers: dict[str, Handler] | None = None,
) -> Worker:
    from alquimista_ops.commands.runtime_hooks import build_store

    overrides: dict[str, int] = {"concurrency": concurrency}
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    return Worker(
        create_db_engine(settings),
        config=WorkerConfig.from_settings(settings, **overrides),
        cache=build_cache_hooks(settings),
        store=build_store(settings),
        handlers=handlers,
    )


def run_worker(worker: Worker, settings: Settings | None = None) -> None:
    """Run until SIGTERM/SIGINT; the commands in hand are finished before exiting."""

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        worker.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # The worker process also runs the daily usage rollup on its schedule (one run per day
    # across all workers: the scheduler takes a database lock).
    settings = settings or get_settings()
    wire_usage_cache(settings)
    scheduler = start_scheduler_thread(worker.engine, settings)
    try:
        worker.run()
    finally:
        stop_scheduler_thread(scheduler)
        worker.engine.dispose()


def worker_command(
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="Threads claiming and running commands")
    ] = 1,
    batch_size: Annotated[
        int | None, typer.Option(min=1, max=1000, help="Commands claimed per transaction")
    ] = None,
) -> None:
    """Run the operational command worker (claims PENDING commands, wakes on NOTIFY)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    run_worker(build_worker(settings, concurrency, batch_size), settings)
