from __future__ import annotations

import uuid
from typing import Any

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.params import Page
from alquimista_ops.core.reads import Reads
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


async def tenant_incidents(
    reads: Reads, scope: TenantScope, status: str, severity: str | None, page: Page
) -> dict[str, Any]:
    params: dict[str, Any] = {"tid": scope.tenant_id, "limit": page.limit, "offset": page.offset}
    if severity is not None:
        params["severity"] = severity
    counters, *rows = await reads.all(
        queries.tenant_incidents(status, severity is not None), **params
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


async def recent_tenant_incidents(reads: Reads, tenant_id: uuid.UUID, limit: int) -> list[Any]:
    """The tenant's latest ``limit`` incidents (any status), latest first (rows)."""
    return await reads.all(queries.RECENT_FOR_TENANT, tid=tenant_id, limit=limit)


async def recent_incidents(reads: Reads, status: str, limit: int) -> list[Any]:
    """The latest incidents of every tenant (and of the platform), with the tenant's name."""
    return await reads.all(queries.recent_all_tenants(status), limit=limit)


async def open_counters(reads: Reads) -> Any:
    """The platform's open incidents and the critical ones among them (``open``,
    ``critical_open``)."""
    return await reads.one(queries.OPEN_COUNTERS)
