from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.agents import service
from alquimista_ops.agents.schemas import TenantAgents
from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.cache import tenant_scope
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.http_cache import CacheDep, cached_json_async

router = APIRouter(tags=["tenant"])


@router.get("/tenant/agents", response_model=TenantAgents, summary="The tenant's agents")
async def tenant_agents(
    conn: DbDep,
    scope: TenantScopeDep,
    cache: CacheDep,
    status: Annotated[Literal["active", "inactive", "error", "all"], Query()] = "active",
) -> Response:
    return await cached_json_async(
        cache,
        "tenant_agents",
        tenant_scope(scope.tenant_id),
        {"status": status},
        TenantAgents,
        lambda: service.tenant_agents(conn, scope, status),
    )
