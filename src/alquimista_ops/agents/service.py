from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.agents import queries
from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.fastread import Call
from alquimista_ops.core.numbers import rate, weighted_avg


def tenant_agents_calls(scope: TenantScope, status: str) -> list[Call]:
    """The statements ``tenant_agents`` runs, for ``core.fastread.prefetch``."""
    return [queries.tenant_agents_with_usage_call(*_agents_args(scope, status))]


def _agents_args(scope: TenantScope, status: str) -> tuple[Any, str | None, date, date]:
    today = utctoday()
    return scope.tenant_id, None if status == "all" else status, today - timedelta(days=29), today


def tenant_agents(conn: Connection, scope: TenantScope, status: str) -> dict[str, Any]:
    rows = queries.tenant_agents_with_usage(conn, *_agents_args(scope, status))
    result = []
    for row in rows:
        # rate and weighted_avg answer 0.0 for an agent without usage (NULL figures)
        total = int(row.total_requests or 0)
        result.append(
            {
                "id": row.id,
                "name": row.name,
                "display_name": row.display_name,
                "category": row.category,
                "status": row.status,
                "activated_at": row.activated_at,
                "usage_last_30_days": {
                    "total_requests": total,
                    "success_rate": rate(row.successful_requests, total),
                    "avg_response_time_ms": weighted_avg(row.weighted_response_ms, total),
                },
            }
        )
    return {"agents": result}
