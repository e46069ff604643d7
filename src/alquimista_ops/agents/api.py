from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from alquimista_ops.agents import service
from alquimista_ops.agents.schemas import TenantAgents
from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.deps import DbDep

router = APIRouter(tags=["tenant"])


@router.get("/tenant/agents", response_model=TenantAgents, summary="The tenant's agents")
def tenant_agents(
    conn: DbDep,
    scope: TenantScopeDep,
    status: Annotated[Literal["active", "inactive", "error", "all"], Query()] = "active",
) -> dict[str, Any]:
    return service.tenant_agents(conn, scope, status)
