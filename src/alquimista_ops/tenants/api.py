from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.cache import tenant_scope
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.http_cache import CacheDep, cached_json_async
from alquimista_ops.tenants import service
from alquimista_ops.tenants.schemas import TenantMe

router = APIRouter(tags=["tenant"])


@router.get("/tenant/me", response_model=TenantMe, summary="The caller's tenant")
async def tenant_me(conn: DbDep, scope: TenantScopeDep, cache: CacheDep) -> Response:
    return await cached_json_async(
        cache,
        "tenant_me",
        tenant_scope(scope.tenant_id),
        None,
        TenantMe,
        lambda: service.tenant_me(conn, scope),
    )
