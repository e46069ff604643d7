from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantReadDep
from alquimista_ops.tenants import service
from alquimista_ops.tenants.schemas import TenantMe

router = APIRouter(tags=["tenant"])


@router.get("/tenant/me", response_model=TenantMe, summary="The caller's tenant")
async def tenant_me(read: TenantReadDep) -> Response:
    return await read.tenant_json(
        "tenant_me",
        None,
        TenantMe,
        lambda reads: service.tenant_me(reads, read.scope),
    )
