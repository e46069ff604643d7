"""Tenant information as seen by the tenant."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.errors import NotFound
from alquimista_ops.core.fastread import Call
from alquimista_ops.core.numbers import money
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


def tenant_me_calls(scope: TenantScope) -> list[Call]:
    """The statements ``tenant_me`` runs, for ``core.fastread.prefetch``."""
    return [queries.tenant_overview_call(scope.tenant_id, _month_start())]


def _month_start() -> date:
    return utctoday().replace(day=1)


def tenant_me(conn: Connection, scope: TenantScope) -> dict[str, Any]:
    row = queries.tenant_overview(conn, scope.tenant_id, _month_start())
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
