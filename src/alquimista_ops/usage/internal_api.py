"""Staff route: the platform usage overview (INTERNAL_ADMIN and INTERNAL_SUPPORT)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from alquimista_ops.auth.deps import StaffReadDep
from alquimista_ops.core.cache import PLATFORM_SCOPE
from alquimista_ops.core.params import PeriodDep
from alquimista_ops.usage import overview
from alquimista_ops.usage.overview_schemas import UsageOverview

router = APIRouter(tags=["internal"])


@router.get(
    "/internal/usage/overview", response_model=UsageOverview, summary="Platform usage overview"
)
async def usage_overview(read: StaffReadDep, period: PeriodDep) -> Response:
    return await read.cached_json(
        "usage_overview",
        PLATFORM_SCOPE,
        {"from": period.start, "to": period.end},
        UsageOverview,
        lambda reads: overview.usage_overview(reads, period),
    )
