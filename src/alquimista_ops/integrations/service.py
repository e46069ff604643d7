from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.fastread import Call
from alquimista_ops.integrations import queries


def tenant_integrations_calls(
    scope: TenantScope, status: str | None, integration_type: str | None
) -> list[Call]:
    """The statements ``tenant_integrations`` runs, for ``core.fastread.prefetch``."""
    return [queries.integration_rows_call(scope.tenant_id, status, integration_type)]


def tenant_integrations(
    conn: Connection, scope: TenantScope, status: str | None, integration_type: str | None
) -> dict[str, Any]:
    show_config = scope.principal.is_internal or scope.principal.is_tenant_admin
    rows = queries.integration_rows(conn, scope.tenant_id, status, integration_type)
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
