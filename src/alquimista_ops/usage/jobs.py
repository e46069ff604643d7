"""The rollup as a job: one short transaction per day, raw retention, a system event per run,
and the usage-changed hook called after commit.

Cache invalidation hook: every job here takes ``on_usage_changed``, a callable receiving the
ids of the tenants whose usage figures changed (called after the transactions committed,
never inside them). Without one, the process-wide hook registered with
``set_usage_changed_hook`` is used (a no-op until a process registers one).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from alquimista_ops.usage import repository
from alquimista_ops.usage.rollup import RollupResult, days_between, oldest_raw_day, rollup_day

log = logging.getLogger(__name__)

UsageChangedHook = Callable[[Collection[uuid.UUID]], None]
JOB_NAME = "usage_daily_rollup"


def no_usage_hook(_tenant_ids: Collection[uuid.UUID]) -> None:
    """Default hook: nothing to invalidate."""


_process_hook: UsageChangedHook = no_usage_hook


def set_usage_changed_hook(hook: UsageChangedHook | None) -> None:
    """Register the process-wide hook used when a job is given none (e.g. cache invalidation,
    wired once at process start: HTTP app, worker, CLI)."""
    global _process_hook
    _process_hook = hook or no_usage_hook


def wire_usage_cache(settings: Any) -> None:
    """Register the read cache's ``invalidate_usage`` as this process's usage-changed hook
    (for processes without an HTTP runtime: the worker and the CLI jobs)."""
    from alquimista_ops.core.cache import build_cache

    cache = build_cache(settings)
    if cache.enabled:
        set_usage_changed_hook(cache.invalidate_usage)


def current_usage_hook() -> UsageChangedHook:
    return _process_hook


def _notify(hook: UsageChangedHook | None, tenant_ids: Collection[uuid.UUID]) -> None:
    if not tenant_ids:
        return
    try:
        (hook or current_usage_hook())(tenant_ids)
    except Exception:  # a cache that is down must never fail the job
        log.exception("usage-changed hook failed")


def rollup_days(
    engine: Engine,
    start: date,
    end: date,
    *,
    tenant_id: uuid.UUID | None = None,
    on_usage_changed: UsageChangedHook | None = None,
    progress: Callable[[date], None] | None = None,
) -> RollupResult:
    """Roll up ``[start, end]``, committing after each day (short transactions)."""
    if end < start:
        raise ValueError("end is before start")
    with engine.connect() as conn:
        oldest = oldest_raw_day(conn)
    total = RollupResult(start, end, 0, 0)
    for day in days_between(start, end):
        if oldest is None or day < oldest:
            total = total.merge(RollupResult(day, day, 0, 0, days_skipped=1))
        else:
            with engine.begin() as conn:
                result = rollup_day(conn, day, tenant_id=tenant_id)
            _notify(on_usage_changed, result.tenant_ids)
            total = total.merge(result)
        if progress:
            progress(day)
    return total


@dataclass(frozen=True)
class RetentionResult:
    cutoff: date
    days: int
    rows_deleted: int
    rollup: RollupResult | None


def apply_retention(
    engine: Engine,
    today: date,
    retention_days: int,
    *,
    on_usage_changed: UsageChangedHook | None = None,
    max_days: int = 400,
) -> RetentionResult:
    """Delete raw rows of days older than ``today - retention_days``, each day rolled up first
    in the same transaction (so no raw row is removed before it is counted)."""
    cutoff = today - timedelta(days=retention_days)
    days = deleted = 0
    rollup: RollupResult | None = None
    for _ in range(max_days):
        with engine.begin() as conn:
            oldest = oldest_raw_day(conn)
            if oldest is None or oldest >= cutoff:
                break
            result = rollup_day(conn, oldest)
            deleted += repository.delete_raw_day(conn, oldest)
        _notify(on_usage_changed, result.tenant_ids)
        rollup = result if rollup is None else rollup.merge(result)
        days += 1
    return RetentionResult(cutoff, days, deleted, rollup)


@dataclass(frozen=True)
class JobReport:
    rollup: RollupResult
    retention: RetentionResult | None
    duration_s: float
    event_id: uuid.UUID

    def as_dict(self) -> dict[str, Any]:
        data = {**self.rollup.as_dict(), "duration_ms": round(self.duration_s * 1000, 1)}
        if self.retention is not None:
            data["retention"] = {
                "cutoff": self.retention.cutoff.isoformat(),
                "days_removed": self.retention.days,
                "raw_rows_deleted": self.retention.rows_deleted,
            }
        return data


def run_rollup_job(
    engine: Engine,
    start: date,
    end: date,
    *,
    trigger: str,
    tenant_id: uuid.UUID | None = None,
    retention: tuple[date, int] | None = None,
    on_usage_changed: UsageChangedHook | None = None,
    progress: Callable[[date], None] | None = None,
) -> JobReport:
    """Roll up a range (and apply retention when given ``(today, days)``), recording a system
    event with the range, row counts and duration; a failure is recorded and re-raised."""
    started = time.perf_counter()
    base = {"trigger": trigger, "from": start.isoformat(), "to": end.isoformat()}
    if tenant_id is not None:
        base["tenant_id"] = str(tenant_id)
    try:
        result = rollup_days(
            engine,
            start,
            end,
            tenant_id=tenant_id,
            on_usage_changed=on_usage_changed,
            progress=progress,
        )
        kept = None
        if retention is not None:
            kept = apply_retention(
                engine, retention[0], retention[1], on_usage_changed=on_usage_changed
            )
    except Exception as exc:
        duration = time.perf_counter() - started
        with engine.begin() as conn:
            repository.insert_system_event(
                conn,
                event_type="usage.rollup.failed",
                status="failure",
                severity="error",
                title=f"Daily usage rollup failed ({start} to {end})",
                description=f"{type(exc).__name__}: {exc}"[:2000],
                details={
                    **base,
                    "duration_ms": round(duration * 1000, 1),
                    "error": str(exc)[:2000],
                },
                action="rollup",
                resource_id=JOB_NAME,
            )
        raise
    duration = time.perf_counter() - started
    report_details = {
        **base,
        **result.as_dict(),
        "duration_ms": round(duration * 1000, 1),
    }
    if kept is not None:
        report_details["retention"] = {
            "cutoff": kept.cutoff.isoformat(),
            "days_removed": kept.days,
            "raw_rows_deleted": kept.rows_deleted,
        }
    with engine.begin() as conn:
        event_id = repository.insert_system_event(
            conn,
            event_type="usage.rollup.completed",
            status="success",
            severity="info",
            title=f"Daily usage rollup {start} to {end}",
            description=(
                f"{result.rows_read} raw requests read, {result.rows_written} daily rows written"
            ),
            details=report_details,
            action="rollup",
            resource_id=JOB_NAME,
        )
    return JobReport(result, kept, duration, event_id)
