from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, Field


class PeriodOut(BaseModel):
    label: str
    from_: date = Field(alias="from")
    to: date
    days: int

    model_config = {"populate_by_name": True}


class UsageSummary(BaseModel):
    total_requests: int
    successful_requests: int
    failed_requests: int
    success_rate: float
    avg_response_time_ms: float
    total_tokens: int
    total_cost_usd: float


class DailyUsage(UsageSummary):
    date: date


class AgentUsage(UsageSummary):
    agent_id: uuid.UUID
    name: str
    display_name: str


class TenantUsage(BaseModel):
    period: PeriodOut
    summary: UsageSummary
    daily_data: list[DailyUsage]
    by_agent: list[AgentUsage]
