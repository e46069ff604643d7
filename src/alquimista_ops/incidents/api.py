from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from alquimista_ops.auth.deps import TenantScopeDep
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.params import Page, page_param
from alquimista_ops.incidents import service
from alquimista_ops.incidents.schemas import Incidents

router = APIRouter(tags=["tenant"])


@router.get("/tenant/incidents", response_model=Incidents, summary="The tenant's incidents")
def tenant_incidents(
    conn: DbDep,
    scope: TenantScopeDep,
    status: Annotated[Literal["open", "resolved", "all"], Query()] = "all",
    severity: Annotated[Literal["warning", "error", "critical"] | None, Query()] = None,
    page: Page = page_param(default=20, maximum=200),
) -> dict[str, Any]:
    return service.tenant_incidents(conn, scope, status, severity, page)
