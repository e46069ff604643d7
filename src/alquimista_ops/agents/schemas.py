from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class AgentUsage30d(BaseModel):
    total_requests: int
    success_rate: float
    avg_response_time_ms: float


class TenantAgent(BaseModel):
    id: uuid.UUID
    name: str
    display_name: str
    category: str
    status: str
    activated_at: datetime
    usage_last_30_days: AgentUsage30d


class TenantAgents(BaseModel):
    agents: list[TenantAgent]
