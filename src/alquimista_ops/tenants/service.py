"""Tenant information as seen by the tenant."""

from __future__ import annotations

from datetime import date
from typing import Any

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.errors import NotFound
from alquimista_ops.core.numbers import money
from alquimista_ops.core.reads import Reads
from alquimista_ops.tenants import queries
from alquimista_ops.tenants.cnpj import format_cnpj


def tenant_fields(row: Any) -> dict[str, Any]:
    """The fields every tenant view shows, from a ``tenants`` row."""
    return {
        "id": row.id,
        "name": row.name,
        "cnpj": format_cnpj(row.cnpj),
        "segment": row.segment,
        "plan": row.plan,
        "status": row.status,
        "mrr_estimate": money(row.mrr_estimate),
        "created_at": row.created_at,
    }


def _month_start() -> date:
    return utctoday().replace(day=1)


async def tenant_me(reads: Reads, scope: TenantScope) -> dict[str, Any]:
    row = await reads.first(
        queries.TENANT_OVERVIEW, tenant_id=scope.tenant_id, since=_month_start()
    )
    if row is None:
        raise NotFound("Tenant not found")
    return {
        **tenant_fields(row),
        "limits": {
            "max_agents": row.max_agents,
            "max_users": row.max_users,
            "max_requests_per_month": row.max_requests_per_month,
        },
        "usage": {
            "active_agents": int(row.active_agents),
            "active_users": int(row.active_users),
            "requests_this_month": int(row.requests_since),
        },
    }
