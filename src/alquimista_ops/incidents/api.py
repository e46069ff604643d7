from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.cache import tenant_scope
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.http_cache import CacheDep, cached_json_async
from alquimista_ops.core.params import Page, page_param
from alquimista_ops.incidents import service
from alquimista_ops.incidents.schemas import Incidents

router = APIRouter(tags=["tenant"])


@router.get("/tenant/incidents", response_model=Incidents, summary="The tenant's incidents")
async def tenant_incidents(
    conn: DbDep,
    scope: TenantScopeDep,
    cache: CacheDep,
    status: Annotated[Literal["open", "resolved", "all"], Query()] = "all",
    severity: Annotated[Literal["warning", "error", "critical"] | None, Query()] = None,
    page: Page = page_param(default=20, maximum=200),
) -> Response:
    return await cached_json_async(
        cache,
        "tenant_incidents",
        tenant_scope(scope.tenant_id),
        {"status": status, "severity": severity, "limit": page.limit, "offset": page.offset},
        Incidents,
        lambda: service.tenant_incidents(conn, scope, status, severity, page),
    )
