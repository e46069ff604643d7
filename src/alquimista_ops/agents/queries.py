"""SQL for the agents activated for a tenant."""

from __future__ import annotations

import uuid
from datetime import date
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.fastread import Call
from alquimista_ops.core.schema import agents, tenant_agents
from alquimista_ops.usage.queries import agent_usage_subquery


@cache
def _agents_with_usage_stmt(by_status: bool) -> sa.Select[Any]:
    usage = agent_usage_subquery()
    query = (
        sa.select(
            agents.c.id,
            agents.c.name,
            agents.c.display_name,
            agents.c.category,
            tenant_agents.c.status,
            tenant_agents.c.activated_at,
            # NULL when the agent has no usage in the period
            usage.c.total_requests,
            usage.c.successful_requests,
            usage.c.weighted_response_ms,
        )
        .select_from(
            tenant_agents.join(agents, agents.c.id == tenant_agents.c.agent_id).outerjoin(
                usage, usage.c.agent_id == agents.c.id
            )
        )
        .where(tenant_agents.c.tenant_id == sa.bindparam("tid"))
        .order_by(agents.c.display_name)
    )
    if by_status:
        query = query.where(tenant_agents.c.status == sa.bindparam("status"))
    return query


def tenant_agents_with_usage(
    conn: Connection, tenant_id: uuid.UUID, status: str | None, start: date, end: date
) -> list[Any]:
    """The tenant's agents (optionally of one status) by display name, each with its usage
    over ``start..end`` (the usage columns are NULL for an agent without usage then)."""
    return list(conn.execute(*tenant_agents_with_usage_call(tenant_id, status, start, end)))


def tenant_agents_with_usage_call(
    tenant_id: uuid.UUID, status: str | None, start: date, end: date
) -> Call:
    params: dict[str, Any] = {"tid": tenant_id, "start": start, "end": end}
    if status is not None:
        params["status"] = status
    return _agents_with_usage_stmt(status is not None), params
