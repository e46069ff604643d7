from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantReadDep
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
    read: TenantReadDep,
    period: PeriodDep,
    agent_id: Annotated[uuid.UUID | None, Query()] = None,
) -> Response:
    return await read.tenant_json(
        "tenant_usage",
        {"from": period.start, "to": period.end, "label": period.label, "agent": agent_id},
        TenantUsage,
        lambda reads: service.tenant_usage(reads, read.scope, period, agent_id),
    )
