from __future__ import annotations

from datetime import timedelta
from typing import Any

from alquimista_ops.agents import queries
from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.numbers import rate, weighted_avg
from alquimista_ops.core.reads import Reads


async def tenant_agents(reads: Reads, scope: TenantScope, status: str) -> dict[str, Any]:
    """The tenant's agents (of ``status``, or ``all``) with their usage of the last 30 days."""
    today = utctoday()
    params: dict[str, Any] = {"tid": scope.tenant_id, "start": today - timedelta(days=29)}
    if status != "all":
        params["status"] = status
    rows = await reads.all(queries.agents_with_usage(status != "all"), end=today, **params)
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
