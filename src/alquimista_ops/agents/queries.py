"""SQL for the agents activated for a tenant."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import agents, tenant_agents


def tenant_agent_rows(conn: Connection, tenant_id: uuid.UUID, status: str | None) -> list[Any]:
    query = (
        sa.select(
            agents.c.id,
            agents.c.name,
            agents.c.display_name,
            agents.c.category,
            tenant_agents.c.status,
            tenant_agents.c.activated_at,
        )
        .select_from(tenant_agents.join(agents, agents.c.id == tenant_agents.c.agent_id))
        .where(tenant_agents.c.tenant_id == tenant_id)
        .order_by(agents.c.display_name)
    )
    if status is not None:
        query = query.where(tenant_agents.c.status == status)
    return list(conn.execute(query))
