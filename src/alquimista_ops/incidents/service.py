from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.params import Page
from alquimista_ops.incidents import queries


def incident_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "severity": row.severity,
        "title": row.title,
        "description": row.description,
        "category": row.event_category,
        "created_at": row.created_at,
        "resolved_at": row.resolved_at,
    }


def tenant_incidents(
    conn: Connection, scope: TenantScope, status: str, severity: str | None, page: Page
) -> dict[str, Any]:
    rows, counters = queries.tenant_incidents(
        conn, scope.tenant_id, status, severity, page.limit, page.offset
    )
    return {
        "incidents": [incident_dict(row) for row in rows],
        "total": int(counters.total),
        "limit": page.limit,
        "offset": page.offset,
        "counters": {
            "open": int(counters.open),
            "resolved": int(counters.resolved),
            "critical_open": int(counters.critical_open),
        },
    }
