from __future__ import annotations

from datetime import date

from pydantic import BaseModel

from alquimista_ops.usage.schemas import PeriodOut


class MrrShare(BaseModel):
    tenants: int
    mrr: float
    share: float


class PlanMrr(MrrShare):
    plan: str


class SegmentMrr(MrrShare):
    segment: str


class RevenuePoint(BaseModel):
    date: date
    mrr: float
    new_mrr: float
    churned_mrr: float


class BillingOverview(BaseModel):
    period: PeriodOut
    currency: str
    total_mrr: float
    arr: float
    active_tenants: int
    avg_mrr_per_tenant: float
    mrr_at_period_start: float
    new_mrr_this_period: float
    new_tenants_this_period: int
    churned_mrr_this_period: float
    churned_tenants_this_period: int
    net_new_mrr_this_period: float
    by_plan: list[PlanMrr]
    by_segment: list[SegmentMrr]
    revenue_trend: list[RevenuePoint]
