"""SQL read at scrape time by ``GET /metrics``; every query is bounded (grouped counts or one
row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import job_runs, operational_commands, operational_events

AGGREGATION_PATTERNS = ("%rollup%", "%aggregat%")


def commands_by_type_and_status(conn: Connection) -> list[tuple[str, str, int]]:
    oc = operational_commands
    rows = conn.execute(
        sa.select(oc.c.command_type, oc.c.status, sa.func.count())
        .group_by(oc.c.command_type, oc.c.status)
        .order_by(oc.c.command_type, oc.c.status)
    ).all()
    return [(str(t), str(s), int(n)) for t, s, n in rows]


@dataclass(frozen=True)
class LastAggregation:
    finished_at: datetime | None
    duration_seconds: float | None
    rows: int | None
    success: bool | None


def _number(details: dict[str, Any], *keys: str) -> float | None:
    for key in keys:
        value = details.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def last_aggregation(conn: Connection) -> LastAggregation | None:
    """The latest run of the usage aggregation: its ``system`` operational event (the usage
    pipeline records one per run with ``duration_ms`` and ``rows_written``), else the
    ``job_runs`` row of the job. None when it never ran."""
    oe = operational_events
    event = conn.execute(
        sa.select(oe.c.created_at, oe.c.status, oe.c.details)
        .where(
            oe.c.event_category == "system",
            sa.or_(*(oe.c.event_type.like(p) for p in AGGREGATION_PATTERNS)),
        )
        .order_by(oe.c.created_at.desc())
        .limit(1)
    ).first()
    if event is not None:
        details = event.details if isinstance(event.details, dict) else {}
        duration_ms = _number(details, "duration_ms")
        rows = _number(details, "rows_written", "rows", "rows_upserted")
        return LastAggregation(
            event.created_at,
            duration_ms / 1000 if duration_ms is not None else None,
            int(rows) if rows is not None else None,
            event.status == "success",
        )
    jr = job_runs
    run = conn.execute(
        sa.select(jr.c.last_started_at, jr.c.last_finished_at, jr.c.last_status, jr.c.details)
        .where(
            jr.c.last_finished_at.is_not(None),
            sa.or_(*(jr.c.job_name.like(p) for p in AGGREGATION_PATTERNS)),
        )
        .order_by(jr.c.last_finished_at.desc())
        .limit(1)
    ).first()
    if run is None:
        return None
    details = run.details if isinstance(run.details, dict) else {}
    duration_ms = _number(details, "duration_ms")
    duration = duration_ms / 1000 if duration_ms is not None else None
    if duration is None and run.last_started_at is not None:
        duration = max(0.0, (run.last_finished_at - run.last_started_at).total_seconds())
    rows = _number(details, "rows_written", "rows", "rows_upserted")
    status = (run.last_status or "").lower()
    return LastAggregation(
        run.last_finished_at,
        duration,
        int(rows) if rows is not None else None,
        status in {"success", "succeeded", "ok", "done", "completed"} if status else None,
    )
