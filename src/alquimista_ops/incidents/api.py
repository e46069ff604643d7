from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from alquimista_ops.auth.deps import TenantReadDep
from alquimista_ops.core.params import Page, page_param
from alquimista_ops.incidents import service
from alquimista_ops.incidents.schemas import Incidents

router = APIRouter(tags=["tenant"])


@router.get("/tenant/incidents", response_model=Incidents, summary="The tenant's incidents")
async def tenant_incidents(
    read: TenantReadDep,
    status: Annotated[Literal["open", "resolved", "all"], Query()] = "all",
    severity: Annotated[Literal["warning", "error", "critical"] | None, Query()] = None,
    page: Page = page_param(default=20, maximum=200),
) -> Response:
    return await read.tenant_json(
        "tenant_incidents",
        {"status": status, "severity": severity, "limit": page.limit, "offset": page.offset},
        Incidents,
        lambda reads: service.tenant_incidents(reads, read.scope, status, severity, page),
    )
