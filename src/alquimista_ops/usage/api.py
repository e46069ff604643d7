from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.deps import DbDep
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
def tenant_usage(
    conn: DbDep,
    scope: TenantScopeDep,
    period: PeriodDep,
    agent_id: Annotated[uuid.UUID | None, Query()] = None,
) -> dict[str, Any]:
    return service.tenant_usage(conn, scope, period, agent_id)
