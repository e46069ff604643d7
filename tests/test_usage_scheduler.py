"""The daily rollup schedule: once per day across concurrent workers, events recorded,
failures retried on the next tick, late days re-run, retention applied."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.schema import agent_requests, job_runs, operational_events
from alquimista_ops.core.settings import Settings
from alquimista_ops.demo.seed import agent_id_for
from alquimista_ops.usage.ingest import References, Validator, ingest_records
from alquimista_ops.usage.jobs import JOB_NAME
from alquimista_ops.usage.scheduler import DailyRollupScheduler, TickOutcome
from tests.usage_helpers import Req, make_tenant, stored_rollup

TODAY = datetime.now(UTC).date()


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), UTC)


def _world(engine: Engine, days: list[date], per_day: int = 200) -> tuple[uuid.UUID, uuid.UUID]:
    from alquimista_ops.demo import catalogue

    agent = agent_id_for(catalogue.AGENTS[0][0])
    with engine.begin() as conn:
        tenant = make_tenant(conn, 0, [agent])
    reqs = [
        Req(f"{day}-{i}", tenant, agent, "success", 10 + i, i, at(day, 1) + timedelta(seconds=i))
        for day in days
        for i in range(per_day)
    ]
    validator = Validator(now=datetime.now(UTC), max_skew_seconds=300, retention_days=3650)
    with engine.begin() as conn:
        ingest_records(conn, [r.as_json() for r in reqs], validator, References())
    return tenant, agent


def _events(engine: Engine, event_type: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(operational_events).where(operational_events.c.event_type == event_type)
            )
        )


def _job(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(job_runs).where(job_runs.c.job_name == JOB_NAME)).one()


def _details(row: Any) -> dict[str, Any]:
    import json

    return row.details if isinstance(row.details, dict) else json.loads(row.details)


def tick_together(schedulers: list[DailyRollupScheduler], when: datetime) -> list[TickOutcome]:
    """Tick every scheduler at the same moment, each from its own thread."""
    barrier = threading.Barrier(len(schedulers))
    outcomes: list[TickOutcome] = []

    def tick(scheduler: DailyRollupScheduler) -> None:
        barrier.wait()
        outcomes.append(scheduler.tick(when).outcome)

    threads = [threading.Thread(target=tick, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_not_due_before_the_configured_time(clean_db: Engine, settings: Settings) -> None:
    scheduler = DailyRollupScheduler(clean_db, settings)
    assert scheduler.tick(at(TODAY, 1, 59)).outcome is TickOutcome.NOT_DUE
    later = settings.model_copy(update={"usage_rollup_time": "05:30"})
    assert (
        DailyRollupScheduler(clean_db, later).tick(at(TODAY, 5, 29)).outcome is TickOutcome.NOT_DUE
    )
    assert _events(clean_db, "usage.rollup.completed") == []


def test_runs_once_per_day_with_two_concurrent_schedulers(
    clean_db: Engine, settings: Settings
) -> None:
    start = TODAY - timedelta(days=8)
    days = [start + timedelta(days=i) for i in range(8)]
    tenant, _agent = _world(clean_db, days)
    engines = [create_db_engine(settings) for _ in range(2)]
    seen: list[uuid.UUID] = []
    schedulers = [
        DailyRollupScheduler(e, settings, owner=f"worker-{i}", on_usage_changed=seen.extend)
        for i, e in enumerate(engines)
    ]
    try:
        for run_day in days[3:]:
            for minute in (0, 1, 7):  # several ticks during the day
                outcomes = tick_together(schedulers, at(run_day, 2, minute))
                ran = outcomes.count(TickOutcome.RAN)
                assert ran == (1 if minute == 0 else 0), outcomes
                assert set(outcomes) <= {
                    TickOutcome.RAN,
                    TickOutcome.LOCKED,
                    TickOutcome.ALREADY_DONE,
                }
    finally:
        for e in engines:
            e.dispose()
    events = _events(clean_db, "usage.rollup.completed")
    assert len(events) == len(days[3:])
    assert all(e.event_category == "system" and e.status == "success" for e in events)
    first = min(events, key=lambda e: _details(e)["to"])
    details = _details(first)
    # The run of day D covers D-1 and the 2 days before it.
    assert (details["from"], details["to"]) == (str(days[0]), str(days[2]))
    assert details["rows_read"] == 3 * 200 and details["rows_written"] == 3
    assert "duration_ms" in details
    assert _job(clean_db).last_scheduled_for == days[-1]
    assert set(seen) == {tenant}
    with clean_db.connect() as conn:
        rows = stored_rollup(conn)
    assert {k[2] for k in rows} == set(days[:-1])  # the last day is today's: not yet rolled up
    assert all(v[0] == 200 for v in rows.values())


def test_failure_is_recorded_and_retried_on_next_tick(clean_db: Engine, settings: Settings) -> None:
    yesterday = TODAY - timedelta(days=1)
    _tenant, agent = _world(clean_db, [yesterday], per_day=5)
    # A raw row of a tenant that does not exist (written around the validation): the rollup
    # cannot store it (foreign key) and fails.
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(agent_requests).values(
                request_id="orphan",
                tenant_id=uuid.uuid4(),
                agent_id=agent,
                status="success",
                response_time_ms=1,
                tokens_used=1,
                created_at=at(yesterday, 3),
                day=yesterday,
            )
        )
    scheduler = DailyRollupScheduler(clean_db, settings)
    result = scheduler.tick(at(TODAY, 2, 0))
    assert result.outcome is TickOutcome.FAILED and result.error
    failures = _events(clean_db, "usage.rollup.failed")
    assert len(failures) == 1
    assert failures[0].status == "failure" and failures[0].severity == "error"
    assert _details(failures[0])["error"]
    job = _job(clean_db)
    assert job.last_status == "failure" and job.last_scheduled_for is None
    assert job.lock_owner is None
    with clean_db.begin() as conn:
        conn.execute(sa.delete(agent_requests).where(agent_requests.c.request_id == "orphan"))
    assert scheduler.tick(at(TODAY, 2, 1)).outcome is TickOutcome.RAN
    assert scheduler.tick(at(TODAY, 2, 2)).outcome is TickOutcome.ALREADY_DONE
    assert _job(clean_db).last_status == "success"


def test_missed_days_are_caught_up_and_retention_applied(
    clean_db: Engine, settings: Settings
) -> None:
    old = TODAY - timedelta(days=100)
    recent = [TODAY - timedelta(days=d) for d in (12, 11, 10)]
    _world(clean_db, [old, *recent], per_day=3)
    scheduler = DailyRollupScheduler(clean_db, settings)
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(job_runs).values(
                job_name=JOB_NAME, last_scheduled_for=TODAY - timedelta(days=11)
            )
        )
    result = scheduler.tick(at(TODAY, 3))
    assert result.outcome is TickOutcome.RAN and result.report is not None
    assert result.report.rollup.start == TODAY - timedelta(days=11)  # days since the last run
    assert result.report.retention is not None
    assert result.report.retention.rows_deleted == 3  # the day older than 90 days
    with clean_db.connect() as conn:
        raw_days = set(conn.execute(sa.select(agent_requests.c.day).distinct()).scalars())
        rolled = {k[2] for k in stored_rollup(conn)}
    assert raw_days == set(recent)
    assert old in rolled and set(recent[1:]) <= rolled


def test_scheduler_loop_runs_and_stops(clean_db: Engine, settings: Settings) -> None:
    from alquimista_ops.usage.scheduler import run_scheduler_loop

    fast = settings.model_copy(
        update={"usage_scheduler_interval_seconds": 0.05, "usage_rollup_time": "00:00"}
    )
    stop = threading.Event()
    changed: list[Any] = []
    _world(clean_db, [TODAY - timedelta(days=1)], per_day=4)
    thread = threading.Thread(
        target=run_scheduler_loop,
        args=(stop,),
        kwargs={"engine": clean_db, "settings": fast, "on_usage_changed": changed.append},
    )
    thread.start()
    try:
        for _ in range(200):
            if _events(clean_db, "usage.rollup.completed"):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert len(_events(clean_db, "usage.rollup.completed")) == 1
    assert changed  # the hook heard about the tenant whose usage changed
