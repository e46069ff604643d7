from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.agents import queries
from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.numbers import rate, weighted_avg
from alquimista_ops.usage import queries as usage_queries


def tenant_agents(conn: Connection, scope: TenantScope, status: str) -> dict[str, Any]:
    rows = queries.tenant_agent_rows(conn, scope.tenant_id, None if status == "all" else status)
    today = utctoday()
    usage = {
        row.agent_id: row
        for row in usage_queries.usage_by_agent(
            conn, scope.tenant_id, today - timedelta(days=29), today, None
        )
    }
    result = []
    for row in rows:
        stats = usage.get(row.id)
        total = int(stats.total_requests) if stats else 0
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
                    "success_rate": rate(stats.successful_requests, total) if stats else 0.0,
                    "avg_response_time_ms": (
                        weighted_avg(stats.weighted_response_ms, total) if stats else 0.0
                    ),
                },
            }
        )
    return {"agents": result}
