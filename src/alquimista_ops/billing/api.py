"""Staff route: the billing overview (INTERNAL_ADMIN only)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from alquimista_ops.auth.deps import AdminReadDep
from alquimista_ops.billing import service
from alquimista_ops.billing.schemas import BillingOverview
from alquimista_ops.core.cache import PLATFORM_SCOPE
from alquimista_ops.core.params import PeriodDep

router = APIRouter(tags=["internal"])


@router.get(
    "/internal/billing/overview",
    response_model=BillingOverview,
    summary="Billing overview: MRR, ARR, movements, by plan and segment, running MRR",
)
async def billing_overview(read: AdminReadDep, period: PeriodDep) -> Response:
    return await read.cached_json(
        "billing_overview",
        PLATFORM_SCOPE,
        {"from": period.start, "to": period.end},
        BillingOverview,
        lambda reads: service.billing_overview(reads, period),
    )
