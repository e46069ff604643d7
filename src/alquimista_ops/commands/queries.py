"""SQL of the command effects and of the validation look-ups (tenants, agents, integrations)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from alquimista_ops.core.reads import Query
from alquimista_ops.core.schema import (
    agents,
    operational_events,
    tenant_agents,
    tenant_integrations,
    tenant_usage_daily,
    tenants,
)
from alquimista_ops.core.types import UUIDType

# The names of the tenants ``ids`` (a list): ``id``, ``name``.
TENANT_NAMES = Query(
    sa.select(tenants.c.id, tenants.c.name).where(
        tenants.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(UUIDType)))
    )
)


def tenant_row(conn: Connection, tenant_id: uuid.UUID) -> Any:
    return conn.execute(
        sa.select(tenants.c.id, tenants.c.name, tenants.c.status).where(tenants.c.id == tenant_id)
    ).first()


def tenant_agent_row(conn: Connection, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> Any:
    """The activation of an agent for a tenant, by catalogue agent id or activation id."""
    return conn.execute(
        sa.select(
            tenant_agents.c.id,
            tenant_agents.c.agent_id,
            tenant_agents.c.status,
            tenant_agents.c.last_error,
            agents.c.name,
        )
        .select_from(tenant_agents.join(agents, agents.c.id == tenant_agents.c.agent_id))
        .where(
            tenant_agents.c.tenant_id == tenant_id,
            sa.or_(tenant_agents.c.agent_id == agent_id, tenant_agents.c.id == agent_id),
        )
    ).first()


def integration_row(conn: Connection, tenant_id: uuid.UUID, integration_id: uuid.UUID) -> Any:
    return conn.execute(
        sa.select(
            tenant_integrations.c.id,
            tenant_integrations.c.integration_type,
            tenant_integrations.c.integration_name,
            tenant_integrations.c.status,
            tenant_integrations.c.last_error,
            (tenant_integrations.c.credentials_encrypted.is_not(None)).label("had_credentials"),
        ).where(
            tenant_integrations.c.tenant_id == tenant_id,
            tenant_integrations.c.id == integration_id,
        )
    ).first()


def set_tenant_agent_status(
    conn: Connection, activation_id: uuid.UUID, values: dict[str, Any]
) -> None:
    conn.execute(
        sa.update(tenant_agents).where(tenant_agents.c.id == activation_id).values(**values)
    )


def reset_integration(conn: Connection, integration_id: uuid.UUID, now: datetime) -> None:
    conn.execute(
        sa.update(tenant_integrations)
        .where(tenant_integrations.c.id == integration_id)
        .values(status="pending", credentials_encrypted=None, last_error=None, updated_at=now)
    )


def set_tenant_status(conn: Connection, tenant_id: uuid.UUID, status: str, now: datetime) -> None:
    conn.execute(
        sa.update(tenants).where(tenants.c.id == tenant_id).values(status=status, updated_at=now)
    )


def last_suspension_previous_status(conn: Connection, tenant_id: uuid.UUID) -> str | None:
    """The status a tenant had before its latest suspension (to restore ``trial``)."""
    details = conn.execute(
        sa.select(operational_events.c.details)
        .where(
            operational_events.c.tenant_id == tenant_id,
            operational_events.c.event_type == "tenant.suspended",
        )
        .order_by(operational_events.c.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if isinstance(details, dict):
        value = details.get("previous_status")
        return str(value) if value else None
    return None


def integrations_in_error(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    return list(
        conn.execute(
            sa.select(
                tenant_integrations.c.id,
                tenant_integrations.c.integration_type,
                tenant_integrations.c.integration_name,
                tenant_integrations.c.last_error,
            )
            .where(
                tenant_integrations.c.tenant_id == tenant_id,
                tenant_integrations.c.status == "error",
            )
            .order_by(tenant_integrations.c.integration_name)
        )
    )


def agent_error_rates(conn: Connection, tenant_id: uuid.UUID, since: date) -> list[Any]:
    """Per activated agent: status and requests / failures since ``since`` (daily rollup)."""
    usage = (
        sa.select(
            tenant_usage_daily.c.agent_id,
            sa.func.sum(tenant_usage_daily.c.total_requests).label("requests"),
            sa.func.sum(tenant_usage_daily.c.failed_requests).label("failed"),
        )
        .where(tenant_usage_daily.c.tenant_id == tenant_id, tenant_usage_daily.c.date >= since)
        .group_by(tenant_usage_daily.c.agent_id)
        .subquery()
    )
    return list(
        conn.execute(
            sa.select(
                tenant_agents.c.agent_id,
                agents.c.name,
                tenant_agents.c.status,
                sa.func.coalesce(usage.c.requests, 0).label("requests"),
                sa.func.coalesce(usage.c.failed, 0).label("failed"),
            )
            .select_from(
                tenant_agents.join(agents, agents.c.id == tenant_agents.c.agent_id).outerjoin(
                    usage, usage.c.agent_id == tenant_agents.c.agent_id
                )
            )
            .where(tenant_agents.c.tenant_id == tenant_id)
            .order_by(agents.c.name)
        )
    )
