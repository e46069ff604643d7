"""The command worker and the daily usage scheduler inside the server process, for
``alquimista-ops dev`` (``COMMAND_INPROCESS_WORKER=on``): ``make run`` alone then processes
commands and runs the daily rollup. Deployments run ``alquimista-ops worker``, which does both."""

from __future__ import annotations

import threading
from typing import Any

from alquimista_ops.commands.runtime_hooks import cache_hooks_for, store_for
from alquimista_ops.commands.worker import Worker, WorkerConfig
from alquimista_ops.runtime import Runtime
from alquimista_ops.usage.scheduler import run_scheduler_loop

SCHEDULER_KEY = "usage_scheduler"


def start_inprocess_worker(runtime: Runtime) -> Worker | None:
    if not runtime.settings.command_inprocess_worker:
        return None
    worker = Worker(
        runtime.engine,
        config=WorkerConfig.from_settings(runtime.settings, concurrency=1),
        store=store_for(runtime),
        cache=cache_hooks_for(runtime),
    )
    worker.start()
    runtime.extras[SCHEDULER_KEY] = start_scheduler_thread(runtime.engine, runtime.settings)
    return worker


def start_scheduler_thread(engine: Any, settings: Any) -> tuple[threading.Event, threading.Thread]:
    """The daily usage rollup scheduler (02:00 UTC by default) in a background thread."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_scheduler_loop,
        args=(stop,),
        kwargs={"engine": engine, "settings": settings},
        name="usage-scheduler",
        daemon=True,
    )
    thread.start()
    return stop, thread


def stop_scheduler_thread(handle: tuple[threading.Event, threading.Thread] | None) -> None:
    if handle is not None:
        stop, thread = handle
        stop.set()
        thread.join(timeout=30.0)


def stop_inprocess_worker(runtime: Runtime, worker: Worker | None) -> None:
    if worker is not None:
        worker.stop(timeout=30.0)
        stop_scheduler_thread(runtime.extras.pop(SCHEDULER_KEY, None))
