"""The daily rollup schedule, for the worker process (and the in-process worker of ``dev``).

``DailyRollupScheduler.tick(now)`` is cheap and safe to call from any number of processes:

- before ``USAGE_ROLLUP_TIME`` (UTC, default 02:00) nothing happens;
- the ``job_runs`` row ``usage_daily_rollup`` remembers the last day the run happened for
  (``last_scheduled_for``), so the run happens once per day;
- one run at a time across processes: ``pg_try_advisory_lock`` (held by a dedicated session,
  released when the run ends or the process dies);
- the run covers the previous day plus ``USAGE_ROLLUP_RERUN_DAYS`` earlier days (late data),
  and every day missed since the last run (at most ``MAX_CATCH_UP_DAYS``); then raw rows older
  than ``USAGE_RAW_RETENTION_DAYS`` are removed, each day rolled up first;
- every tick first stores the staff overview's period rankings of the day if they are missing
  (``usage.rollup.ensure_period_rankings``: after the migration that added them, or a day
  without a run);
- every run records a ``system`` event (range, rows read/written, duration); a failure records
  a failure event with the error and leaves ``last_scheduled_for`` unchanged, so the next tick
  retries.

``run_scheduler_loop(stop_event)`` ticks every ``USAGE_SCHEDULER_INTERVAL_SECONDS`` until the
event is set.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.settings import Settings, get_settings
from alquimista_ops.usage import repository
from alquimista_ops.usage.jobs import (
    JOB_NAME,
    JobReport,
    UsageChangedHook,
    run_rollup_job,
)
from alquimista_ops.usage.rollup import ensure_period_rankings

log = logging.getLogger(__name__)

# Session-level advisory lock key of the scheduled run on PostgreSQL.
SCHEDULER_LOCK_KEY = 0x0A15_5C4E
MAX_CATCH_UP_DAYS = 31


class TickOutcome(enum.StrEnum):
    NOT_DUE = "not_due"
    ALREADY_DONE = "already_done"
    LOCKED = "locked"
    RAN = "ran"
    FAILED = "failed"


@dataclass(frozen=True)
class TickResult:
    outcome: TickOutcome
    scheduled_for: date | None = None
    report: JobReport | None = None
    error: str | None = None


def parse_run_time(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes))


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class DailyRollupScheduler:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        owner: str | None = None,
        on_usage_changed: UsageChangedHook | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.owner = owner or default_owner()
        self.on_usage_changed = on_usage_changed
        self.clock = clock
        self.run_at = parse_run_time(settings.usage_rollup_time)

    # -- the decision ------------------------------------------------------------------------
    def scheduled_day(self, now: datetime) -> date | None:
        """The day whose run is due at ``now`` (the run of day D rolls up D - 1), if any."""
        return now.date() if now.timetz().replace(tzinfo=None) >= self.run_at else None

    def range_for(self, today: date, last_scheduled_for: date | None) -> tuple[date, date]:
        end = today - timedelta(days=1)
        start = end - timedelta(days=self.settings.usage_rollup_rerun_days)
        if last_scheduled_for is not None and last_scheduled_for < start:
            start = max(last_scheduled_for, end - timedelta(days=MAX_CATCH_UP_DAYS))
        return start, end

    def _last_scheduled_for(self) -> date | None:
        with self.engine.begin() as conn:
            repository.ensure_job_row(conn, JOB_NAME)
            row = repository.get_job_row(conn, JOB_NAME)
        value = row.last_scheduled_for if row else None
        return value if isinstance(value, date) or value is None else date.fromisoformat(value)

    def tick(self, now: datetime | None = None) -> TickResult:
        now = now or self.clock()
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
        if ensure_period_rankings(self.engine, now.date()):
            log.info("usage period rankings stored for %s", now.date().isoformat())
        today = self.scheduled_day(now)
        if today is None:
            return TickResult(TickOutcome.NOT_DUE)
        last = self._last_scheduled_for()
        if last is not None and last >= today:
            return TickResult(TickOutcome.ALREADY_DONE, today)
        with self._lock() as held:
            if not held:
                return TickResult(TickOutcome.LOCKED, today)
            last = self._last_scheduled_for()  # another process may have run meanwhile
            if last is not None and last >= today:
                return TickResult(TickOutcome.ALREADY_DONE, today)
            return self._run(today, last, now)

    # -- the run -----------------------------------------------------------------------------
    def _run(self, today: date, last: date | None, now: datetime) -> TickResult:
        start, end = self.range_for(today, last)
        with self.engine.begin() as conn:
            repository.update_job_row(conn, JOB_NAME, last_started_at=now, last_status="running")
        try:
            report = run_rollup_job(
                self.engine,
                start,
                end,
                trigger="schedule",
                retention=(today, self.settings.usage_raw_retention_days),
                on_usage_changed=self.on_usage_changed,
            )
        except Exception as exc:
            log.exception("scheduled usage rollup failed")
            with self.engine.begin() as conn:
                repository.update_job_row(
                    conn,
                    JOB_NAME,
                    last_finished_at=self.clock(),
                    last_status="failure",
                    details={"scheduled_for": today.isoformat(), "error": str(exc)[:2000]},
                )
            return TickResult(TickOutcome.FAILED, today, error=str(exc))
        with self.engine.begin() as conn:
            repository.update_job_row(
                conn,
                JOB_NAME,
                last_scheduled_for=today,
                last_finished_at=self.clock(),
                last_status="success",
                details={"scheduled_for": today.isoformat(), **report.as_dict()},
            )
        log.info("scheduled usage rollup done", extra={"details": report.as_dict()})
        return TickResult(TickOutcome.RAN, today, report=report)

    # -- the lock ----------------------------------------------------------------------------
    def _lock(self) -> _SchedulerLock:
        return _SchedulerLock(self)


class _SchedulerLock:
    """Context manager: ``with lock as held`` – held is False when another process has it."""

    def __init__(self, scheduler: DailyRollupScheduler) -> None:
        self.scheduler = scheduler
        self.conn: Connection | None = None
        self.held = False

    def __enter__(self) -> bool:
        # A dedicated session holds the advisory lock for the whole run; if the process dies
        # the session ends and PostgreSQL releases the lock.
        conn = self.scheduler.engine.connect()
        self.held = bool(
            conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": SCHEDULER_LOCK_KEY}
            ).scalar_one()
        )
        conn.commit()
        if self.held:
            self.conn = conn
        else:
            conn.close()
        return self.held

    def __exit__(self, *_exc: object) -> None:
        conn = self.conn
        if conn is None:
            return
        try:
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEDULER_LOCK_KEY})
            conn.commit()
        except Exception:
            # Never hand a session that may still hold the lock back to the pool.
            log.exception("could not release the usage scheduler lock; dropping the session")
            conn.invalidate()
        finally:
            conn.close()
            self.conn = None


def run_scheduler_loop(
    stop_event: threading.Event,
    *,
    engine: Engine | None = None,
    settings: Settings | None = None,
    on_usage_changed: UsageChangedHook | None = None,
) -> None:
    """Tick until ``stop_event`` is set (for a worker thread). Errors are logged, never raised:
    a database that is down is retried on the next tick. Without ``engine``/``settings`` the
    process settings are used and an engine is created (and disposed at the end)."""
    settings = settings or get_settings()
    owns_engine = engine is None
    engine = engine or create_db_engine(settings)
    try:
        _loop(stop_event, engine, settings, on_usage_changed)
    finally:
        if owns_engine:
            engine.dispose()


def _loop(
    stop_event: threading.Event,
    engine: Engine,
    settings: Settings,
    on_usage_changed: UsageChangedHook | None,
) -> None:
    scheduler = DailyRollupScheduler(engine, settings, on_usage_changed=on_usage_changed)
    while not stop_event.is_set():
        try:
            result = scheduler.tick()
            if result.outcome in (TickOutcome.RAN, TickOutcome.FAILED):
                log.info("usage scheduler tick: %s", result.outcome.value)
        except Exception:
            log.exception("usage scheduler tick failed")
        stop_event.wait(settings.usage_scheduler_interval_seconds)
