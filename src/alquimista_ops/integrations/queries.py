"""SQL for a tenant's integrations. ``credentials_encrypted`` is never selected."""

from __future__ import annotations

import uuid
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.fastread import Call
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


@cache
def _integrations_stmt(by_status: bool, by_type: bool) -> sa.Select[Any]:
    query = (
        sa.select(*PUBLIC_COLUMNS)
        .where(ti.c.tenant_id == sa.bindparam("tid"))
        .order_by(ti.c.integration_type, ti.c.integration_name)
    )
    if by_status:
        query = query.where(ti.c.status == sa.bindparam("status"))
    if by_type:
        query = query.where(ti.c.integration_type == sa.bindparam("type"))
    return query


def integration_rows(
    conn: Connection, tenant_id: uuid.UUID, status: str | None, integration_type: str | None
) -> list[Any]:
    return list(conn.execute(*integration_rows_call(tenant_id, status, integration_type)))


def integration_rows_call(
    tenant_id: uuid.UUID, status: str | None, integration_type: str | None
) -> Call:
    params: dict[str, Any] = {"tid": tenant_id}
    if status is not None:
        params["status"] = status
    if integration_type is not None:
        params["type"] = integration_type
    return _integrations_stmt(status is not None, integration_type is not None), params
