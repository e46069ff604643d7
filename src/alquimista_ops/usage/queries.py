"""SQL over the daily rollup (``tenant_usage_daily``) for tenant-level usage figures.

Averages are request-weighted: ``sum(avg_response_time_ms * total_requests) / sum(total)``.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import agents, tenant_usage_daily

u = tenant_usage_daily


def _measures() -> list[sa.ColumnElement[Any]]:
    return [
        sa.func.coalesce(sa.func.sum(u.c.total_requests), 0).label("total_requests"),
        sa.func.coalesce(sa.func.sum(u.c.successful_requests), 0).label("successful_requests"),
        sa.func.coalesce(sa.func.sum(u.c.failed_requests), 0).label("failed_requests"),
        sa.func.coalesce(sa.func.sum(u.c.avg_response_time_ms * u.c.total_requests), 0).label(
            "weighted_response_ms"
        ),
        sa.func.coalesce(sa.func.sum(u.c.total_tokens_used), 0).label("total_tokens"),
        sa.func.coalesce(sa.func.sum(u.c.total_cost_usd), 0).label("total_cost_usd"),
    ]


def _scope(tenant_id: uuid.UUID, start: date, end: date, agent_id: uuid.UUID | None) -> list[Any]:
    conditions: list[Any] = [u.c.tenant_id == tenant_id, u.c.date >= start, u.c.date <= end]
    if agent_id is not None:
        conditions.append(u.c.agent_id == agent_id)
    return conditions


def usage_summary(
    conn: Connection, tenant_id: uuid.UUID, start: date, end: date, agent_id: uuid.UUID | None
) -> Any:
    return conn.execute(
        sa.select(*_measures()).where(*_scope(tenant_id, start, end, agent_id))
    ).one()


def usage_by_day(
    conn: Connection, tenant_id: uuid.UUID, start: date, end: date, agent_id: uuid.UUID | None
) -> list[Any]:
    query = (
        sa.select(u.c.date, *_measures())
        .where(*_scope(tenant_id, start, end, agent_id))
        .group_by(u.c.date)
        .order_by(u.c.date)
    )
    return list(conn.execute(query))


def usage_by_agent(
    conn: Connection, tenant_id: uuid.UUID, start: date, end: date, agent_id: uuid.UUID | None
) -> list[Any]:
    query = (
        sa.select(
            agents.c.id.label("agent_id"),
            agents.c.name,
            agents.c.display_name,
            *_measures(),
            sa.func.max(u.c.date).label("last_date"),
        )
        .select_from(u.join(agents, agents.c.id == u.c.agent_id))
        .where(*_scope(tenant_id, start, end, agent_id))
        .group_by(agents.c.id, agents.c.name, agents.c.display_name)
        .order_by(sa.desc("total_requests"), agents.c.name)
    )
    return list(conn.execute(query))
