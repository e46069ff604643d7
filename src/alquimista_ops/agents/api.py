from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.agents import service
from alquimista_ops.agents.schemas import TenantAgents
from alquimista_ops.auth.deps import TenantReadDep

router = APIRouter(tags=["tenant"])


@router.get("/tenant/agents", response_model=TenantAgents, summary="The tenant's agents")
async def tenant_agents(
    read: TenantReadDep,
    status: Annotated[Literal["active", "inactive", "error", "all"], Query()] = "active",
) -> Response:
    return await read.tenant_json(
        "tenant_agents",
        {"status": status},
        TenantAgents,
        lambda reads: service.tenant_agents(reads, read.scope, status),
    )
