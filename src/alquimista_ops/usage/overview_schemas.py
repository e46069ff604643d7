from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel

from alquimista_ops.usage.schemas import PeriodOut, UsageSummary


class GlobalStats(BaseModel):
    total_tenants: int
    active_tenants: int
    tenants_with_usage: int
    total_agents_deployed: int
    total_requests: int
    successful_requests: int
    failed_requests: int
    global_success_rate: float
    avg_response_time_ms: float
    total_tokens: int
    total_cost_usd: float


class TopTenant(UsageSummary):
    tenant_id: uuid.UUID
    name: str
    plan: str
    segment: str
    status: str


class TopAgent(UsageSummary):
    agent_id: uuid.UUID
    name: str
    display_name: str
    category: str
    active_deployments: int


class DailyTrend(UsageSummary):
    date: date
    tenants_with_usage: int


class UsageOverview(BaseModel):
    period: PeriodOut
    global_stats: GlobalStats
    top_tenants: list[TopTenant]
    top_agents: list[TopAgent]
    daily_trends: list[DailyTrend]
