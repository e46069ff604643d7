from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.deps import DbDep
from alquimista_ops.tenants import service
from alquimista_ops.tenants.schemas import TenantMe

router = APIRouter(tags=["tenant"])


@router.get("/tenant/me", response_model=TenantMe, summary="The caller's tenant")
def tenant_me(conn: DbDep, scope: TenantScopeDep) -> dict[str, Any]:
    return service.tenant_me(conn, scope)
