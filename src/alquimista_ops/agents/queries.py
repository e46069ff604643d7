"""SQL for the agents activated for a tenant."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from alquimista_ops.core.reads import Query
from alquimista_ops.core.schema import agents, tenant_agents
from alquimista_ops.usage.queries import agent_usage_subquery


@cache
def agents_with_usage(by_status: bool) -> Query:
    """The tenant's (``tid``) agents, optionally of one ``status``, by display name, each with
    its usage over ``start..end`` (the usage columns are NULL for an agent without usage)."""
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
        .order_by(agents.c.display_name, agents.c.id)
    )
    if by_status:
        query = query.where(tenant_agents.c.status == sa.bindparam("status"))
    return Query(query)
