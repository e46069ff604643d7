"""SQL for a tenant's integrations. ``credentials_encrypted`` is never selected."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import tenant_integrations as ti

PUBLIC_COLUMNS = (
    ti.c.id,
    ti.c.integration_type,
    ti.c.integration_name,
    ti.c.status,
    ti.c.config,
    ti.c.last_sync_at,
    ti.c.last_sync_status,
    ti.c.last_error,
    ti.c.sync_count,
    ti.c.error_count,
)


def integration_rows(
    conn: Connection, tenant_id: uuid.UUID, status: str | None, integration_type: str | None
) -> list[Any]:
    query = (
        sa.select(*PUBLIC_COLUMNS)
        .where(ti.c.tenant_id == tenant_id)
        .order_by(ti.c.integration_type, ti.c.integration_name)
    )
    if status is not None:
        query = query.where(ti.c.status == status)
    if integration_type is not None:
        query = query.where(ti.c.integration_type == integration_type)
    return list(conn.execute(query))
