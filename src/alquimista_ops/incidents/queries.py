"""SQL for incidents: operational events of severity warning or worse."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import operational_events as ev
from alquimista_ops.core.schema import tenants

INCIDENT_SEVERITIES = ("warning", "error", "critical")


def incident_conditions(
    tenant_id: uuid.UUID | None, status: str, severity: str | None
) -> list[Any]:
    conditions: list[Any] = [ev.c.severity.in_(INCIDENT_SEVERITIES)]
    if tenant_id is not None:
        conditions.append(ev.c.tenant_id == tenant_id)
    if status == "open":
        conditions.append(ev.c.resolved_at.is_(None))
    elif status == "resolved":
        conditions.append(ev.c.resolved_at.is_not(None))
    if severity is not None:
        conditions.append(ev.c.severity == severity)
    return conditions


def incident_page(
    conn: Connection, conditions: list[Any], limit: int, offset: int
) -> tuple[list[Any], int]:
    rows = conn.execute(
        sa.select(
            ev.c.id,
            ev.c.tenant_id,
            ev.c.severity,
            ev.c.title,
            ev.c.description,
            ev.c.event_category,
            ev.c.created_at,
            ev.c.resolved_at,
        )
        .where(*conditions)
        .order_by(ev.c.created_at.desc(), ev.c.id)
        .limit(limit)
        .offset(offset)
    ).all()
    total = conn.execute(sa.select(sa.func.count()).select_from(ev).where(*conditions)).scalar_one()
    return list(rows), int(total)


def incident_counters(conn: Connection, tenant_id: uuid.UUID | None) -> Any:
    base = incident_conditions(tenant_id, "all", None)
    return conn.execute(
        sa.select(
            sa.func.count().filter(ev.c.resolved_at.is_(None)).label("open"),
            sa.func.count().filter(ev.c.resolved_at.is_not(None)).label("resolved"),
            sa.func.count()
            .filter(ev.c.resolved_at.is_(None), ev.c.severity == "critical")
            .label("critical_open"),
        ).where(*base)
    ).one()


def recent_incidents_all_tenants(conn: Connection, status: str, limit: int) -> list[Any]:
    """The latest incidents of every tenant (and of the platform), with the tenant's name."""
    return list(
        conn.execute(
            sa.select(
                ev.c.id,
                ev.c.tenant_id,
                tenants.c.name.label("tenant_name"),
                ev.c.severity,
                ev.c.title,
                ev.c.event_category,
                ev.c.created_at,
                ev.c.resolved_at,
            )
            .select_from(ev.outerjoin(tenants, tenants.c.id == ev.c.tenant_id))
            .where(*incident_conditions(None, status, None))
            .order_by(ev.c.created_at.desc(), ev.c.id)
            .limit(limit)
        )
    )
