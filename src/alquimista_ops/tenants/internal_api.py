"""Staff routes over tenants (INTERNAL_ADMIN and INTERNAL_SUPPORT)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from alquimista_ops.auth.deps import StaffReadDep
from alquimista_ops.core.cache import PLATFORM_SCOPE, tenant_scope
from alquimista_ops.core.params import Page, page_param
from alquimista_ops.core.search import MAX_SEARCH_LENGTH, parse_search
from alquimista_ops.tenants import internal_service as service
from alquimista_ops.tenants.internal_schemas import (
    InternalTenantAgents,
    TenantDetail,
    TenantList,
)

router = APIRouter(tags=["internal"])

StatusFilter = Literal["active", "trial", "inactive", "suspended", "all"]
PlanFilter = Literal["starter", "professional", "business", "enterprise"]
SegmentFilter = Literal["saude", "educacao", "varejo", "servicos", "tecnologia", "outro"]
TenantIdPath = Annotated[uuid.UUID, Path(description="Tenant id (UUID)")]


@router.get("/internal/tenants", response_model=TenantList, summary="List tenants")
async def list_tenants(
    read: StaffReadDep,
    status: Annotated[StatusFilter, Query()] = "active",
    plan: Annotated[PlanFilter | None, Query()] = None,
    segment: Annotated[SegmentFilter | None, Query()] = None,
    search: Annotated[
        str | None,
        Query(
            max_length=MAX_SEARCH_LENGTH,
            description="Name or CNPJ (any case, accents, punctuation)",
        ),
    ] = None,
    sort_by: Annotated[Literal["name", "created_at", "mrr_estimate"], Query()] = "name",
    sort_order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    page: Page = page_param(default=50, maximum=200),
) -> Response:
    term = parse_search(search)
    params = {
        "status": status,
        "plan": plan,
        "segment": segment,
        "q": term.folded if term else None,
        "sort": f"{sort_by}.{sort_order}",
        "limit": page.limit,
        "offset": page.offset,
    }
    return await read.cached_json(
        "tenants_list",
        PLATFORM_SCOPE,
        params,
        TenantList,
        lambda reads: service.list_tenants(
            reads,
            status=status,
            plan=plan,
            segment=segment,
            search=term,
            sort_by=sort_by,
            sort_order=sort_order,
            page=page,
        ),
    )


@router.get("/internal/tenants/{tenant_id}", response_model=TenantDetail, summary="A tenant")
async def tenant_detail(read: StaffReadDep, tenant_id: TenantIdPath) -> Response:
    return await read.cached_json(
        "tenant_detail",
        tenant_scope(tenant_id),
        None,
        TenantDetail,
        lambda reads: service.tenant_detail(reads, tenant_id),
    )


@router.get(
    "/internal/tenants/{tenant_id}/agents",
    response_model=InternalTenantAgents,
    summary="A tenant's agents with configuration and usage",
)
async def tenant_agents(read: StaffReadDep, tenant_id: TenantIdPath) -> Response:
    return await read.cached_json(
        "tenant_agents_internal",
        tenant_scope(tenant_id),
        None,
        InternalTenantAgents,
        lambda reads: service.tenant_agents(reads, tenant_id),
    )
