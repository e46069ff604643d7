from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.cache import tenant_scope
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.http_cache import CacheDep, cached_json_async
from alquimista_ops.core.params import PeriodDep
from alquimista_ops.usage import service
from alquimista_ops.usage.schemas import TenantUsage

router = APIRouter(tags=["tenant"])


@router.get(
    "/tenant/usage",
    response_model=TenantUsage,
    response_model_by_alias=True,
    summary="The tenant's usage over a period",
)
async def tenant_usage(
    conn: DbDep,
    scope: TenantScopeDep,
    period: PeriodDep,
    cache: CacheDep,
    agent_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    return await cached_json_async(
        cache,
        "tenant_usage",
        tenant_scope(scope.tenant_id),
        {"from": period.start, "to": period.end, "label": period.label, "agent": agent_id},
        TenantUsage,
        lambda: service.tenant_usage(conn, scope, period, agent_id),
    )
