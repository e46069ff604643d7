from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class TenantLimits(BaseModel):
    max_agents: int
    max_users: int
    max_requests_per_month: int


class TenantUsageNow(BaseModel):
    active_agents: int
    active_users: int
    requests_this_month: int


class TenantMe(BaseModel):
    id: uuid.UUID
    name: str
    cnpj: str
    segment: str
    plan: str
    status: str
    mrr_estimate: float
    created_at: datetime
    limits: TenantLimits
    usage: TenantUsageNow
