from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantReadDep
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
async def tenant_integrations(
    read: TenantReadDep,
    status: Annotated[StatusFilter | None, Query()] = None,
    type: Annotated[TypeFilter | None, Query()] = None,
) -> Response:
    # TENANT_USER sees no configuration: the view is part of the key.
    show_config = read.principal.is_internal or read.principal.is_tenant_admin
    return await read.tenant_json(
        "tenant_integrations",
        {"status": status, "type": type, "view": "config" if show_config else "basic"},
        Integrations,
        lambda reads: service.tenant_integrations(reads, read.scope, status, type),
        exclude_unset=True,
    )
