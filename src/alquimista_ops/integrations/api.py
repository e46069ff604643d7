from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.deps import DbDep
from alquimista_ops.integrations import service
from alquimista_ops.integrations.schemas import Integrations

router = APIRouter(tags=["tenant"])

StatusFilter = Literal["active", "inactive", "error", "pending"]
TypeFilter = Literal["whatsapp", "email", "crm", "calendar", "payment", "erp", "slack", "webhook"]


@router.get(
    "/tenant/integrations",
    response_model=Integrations,
    response_model_exclude_unset=True,
    summary="The tenant's integrations (configuration for admins; never credentials)",
)
def tenant_integrations(
    conn: DbDep,
    scope: TenantScopeDep,
    status: Annotated[StatusFilter | None, Query()] = None,
    type: Annotated[TypeFilter | None, Query()] = None,
) -> dict[str, Any]:
    return service.tenant_integrations(conn, scope, status, type)
