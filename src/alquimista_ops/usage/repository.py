"""SQL of the usage pipeline's jobs: the ``job_runs`` bookkeeping row, system events, and raw
request retention."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.schema import agent_requests, job_runs, operational_events


def ensure_job_row(conn: Connection, job_name: str) -> None:
    conn.execute(
        pg_insert(job_runs)
        .values(job_name=job_name)
        .on_conflict_do_nothing(index_elements=["job_name"])
    )


def get_job_row(conn: Connection, job_name: str) -> Any:
    return conn.execute(sa.select(job_runs).where(job_runs.c.job_name == job_name)).first()


def update_job_row(conn: Connection, job_name: str, **values: Any) -> None:
    conn.execute(sa.update(job_runs).where(job_runs.c.job_name == job_name).values(**values))


def insert_system_event(
    conn: Connection,
    *,
    event_type: str,
    status: str,
    severity: str,
    title: str,
    description: str | None,
    details: dict[str, Any],
    action: str,
    resource_id: str,
) -> uuid.UUID:
    event_id = uuid.uuid4()
    conn.execute(
        sa.insert(operational_events).values(
            id=event_id,
            event_type=event_type,
            event_category="system",
            resource_type="job",
            resource_id=resource_id,
            action=action,
            status=status,
            severity=severity,
            title=title[:300],
            description=description,
            details=details,
            created_at=utcnow(),
        )
    )
    return event_id


def delete_raw_day(conn: Connection, day: date) -> int:
    result = conn.execute(sa.delete(agent_requests).where(agent_requests.c.day == day))
    return int(result.rowcount or 0)
