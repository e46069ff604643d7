"""The in-process worker of ``serve``/``dev`` on the embedded SQLite database, so that
``make run`` alone processes commands (PostgreSQL deployments run ``alquimista-ops worker``)."""

from __future__ import annotations

from alquimista_ops.commands.runtime_hooks import WAKE_KEY, cache_hooks_for, store_for
from alquimista_ops.commands.worker import Worker, WorkerConfig
from alquimista_ops.core.db import is_postgres
from alquimista_ops.core.runtime import Runtime


def start_inprocess_worker(runtime: Runtime) -> Worker | None:
    mode = runtime.settings.command_inprocess_worker
    if mode == "off" or (mode == "auto" and is_postgres(runtime.engine)):
        return None
    worker = Worker(
        runtime.engine,
        config=WorkerConfig.from_settings(runtime.settings, concurrency=1),
        store=store_for(runtime),
        cache=cache_hooks_for(runtime),
    )
    runtime.extras[WAKE_KEY] = worker.wake
    worker.start()
    return worker


def stop_inprocess_worker(runtime: Runtime, worker: Worker | None) -> None:
    if worker is not None:
        runtime.extras.pop(WAKE_KEY, None)
        worker.stop(timeout=30.0)
