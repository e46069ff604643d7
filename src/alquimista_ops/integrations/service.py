from __future__ import annotations

from typing import Any

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.reads import Reads
from alquimista_ops.integrations import queries


async def tenant_integrations(
    reads: Reads, scope: TenantScope, status: str | None, integration_type: str | None
) -> dict[str, Any]:
    show_config = scope.principal.is_internal or scope.principal.is_tenant_admin
    params: dict[str, Any] = {"tid": scope.tenant_id}
    if status is not None:
        params["status"] = status
    if integration_type is not None:
        params["type"] = integration_type
    query = queries.integrations(status is not None, integration_type is not None)
    rows = await reads.all(query, **params)
    items = []
    for row in rows:
        item: dict[str, Any] = {
            "id": row.id,
            "type": row.integration_type,
            "name": row.integration_name,
            "status": row.status,
            "last_sync_at": row.last_sync_at,
            "last_sync_status": row.last_sync_status,
            "last_error": row.last_error,
            "sync_count": int(row.sync_count),
            "error_count": int(row.error_count),
        }
        if show_config:
            item["config"] = row.config or {}
        items.append(item)
    return {"integrations": items}
