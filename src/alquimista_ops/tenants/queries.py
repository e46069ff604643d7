"""SQL for tenant information."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import (
    plans,
    tenant_agents,
    tenant_usage_daily,
    tenant_users,
    tenants,
)


def tenant_with_plan(conn: Connection, tenant_id: uuid.UUID) -> Any:
    query = (
        sa.select(
            tenants,
            plans.c.max_agents,
            plans.c.max_users,
            plans.c.max_requests_per_month,
        )
        .join(plans, plans.c.name == tenants.c.plan)
        .where(tenants.c.id == tenant_id)
    )
    return conn.execute(query).first()


def tenant_usage_counts(conn: Connection, tenant_id: uuid.UUID, month_start: date) -> Any:
    """Active agents, active users and requests since ``month_start`` in one round trip."""
    active_agents = (
        sa.select(sa.func.count())
        .select_from(tenant_agents)
        .where(tenant_agents.c.tenant_id == tenant_id, tenant_agents.c.status == "active")
        .scalar_subquery()
    )
    active_users = (
        sa.select(sa.func.count())
        .select_from(tenant_users)
        .where(tenant_users.c.tenant_id == tenant_id, tenant_users.c.status == "active")
        .scalar_subquery()
    )
    requests = (
        sa.select(sa.func.coalesce(sa.func.sum(tenant_usage_daily.c.total_requests), 0))
        .where(
            tenant_usage_daily.c.tenant_id == tenant_id,
            tenant_usage_daily.c.date >= month_start,
        )
        .scalar_subquery()
    )
    return conn.execute(
        sa.select(
            active_agents.label("active_agents"),
            active_users.label("active_users"),
            requests.label("requests_this_month"),
        )
    ).one()
