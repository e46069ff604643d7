"""SQL for a tenant's integrations. ``credentials_encrypted`` is never selected."""

from __future__ import annotations

from functools import cache

import sqlalchemy as sa

from alquimista_ops.core.reads import Query
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
def integrations(by_status: bool, by_type: bool) -> Query:
    """The tenant's (``tid``) integrations, optionally of one ``status`` and ``type``."""
    query = (
        sa.select(*PUBLIC_COLUMNS)
        .where(ti.c.tenant_id == sa.bindparam("tid"))
        .order_by(ti.c.integration_type, ti.c.integration_name)
    )
    if by_status:
        query = query.where(ti.c.status == sa.bindparam("status"))
    if by_type:
        query = query.where(ti.c.integration_type == sa.bindparam("type"))
    return Query(query)
