from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from alquimista_ops.tenants.schemas import TenantLimits


class TenantListItem(BaseModel):
    id: uuid.UUID
    name: str
    cnpj: str
    segment: str
    plan: str
    status: str
    mrr_estimate: float
    created_at: datetime
    active_agents: int
    active_users: int
    requests_last_30_days: int


class TenantList(BaseModel):
    tenants: list[TenantListItem]
    total: int
    limit: int
    offset: int


class TenantInfo(BaseModel):
    id: uuid.UUID
    name: str
    cnpj: str
    segment: str
    plan: str
    status: str
    mrr_estimate: float
    created_at: datetime
    updated_at: datetime
    churned_at: datetime | None
    limits: TenantLimits


class TenantUserItem(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: str
    status: str
    last_login_at: datetime | None
    created_at: datetime


class TenantAgentItem(BaseModel):
    id: uuid.UUID
    name: str
    display_name: str
    category: str
    status: str
    activated_at: datetime
    deactivated_at: datetime | None
    last_used_at: datetime | None


class TenantIntegrationItem(BaseModel):
    id: uuid.UUID
    type: str
    name: str
    status: str
    config: dict[str, Any]
    last_sync_at: datetime | None
    last_sync_status: str | None
    last_error: str | None
    sync_count: int
    error_count: int


class UsageWindows(BaseModel):
    requests_last_7_days: int
    requests_last_30_days: int
    success_rate_last_30_days: float
    avg_response_time_ms_last_30_days: float


class RecentIncident(BaseModel):
    id: uuid.UUID
    severity: str
    title: str
    description: str | None
    category: str
    created_at: datetime
    resolved_at: datetime | None


class TenantDetail(BaseModel):
    tenant: TenantInfo
    users: list[TenantUserItem]
    agents: list[TenantAgentItem]
    integrations: list[TenantIntegrationItem]
    usage_summary: UsageWindows
    recent_incidents: list[RecentIncident]


class AgentUsageStats(BaseModel):
    total_requests: int
    failed_requests: int
    success_rate: float
    avg_response_time_ms: float
    last_request_at: datetime | None


class InternalTenantAgent(BaseModel):
    id: uuid.UUID
    tenant_agent_id: uuid.UUID
    name: str
    display_name: str
    category: str
    version: str
    status: str
    config: dict[str, Any]
    activated_at: datetime
    deactivated_at: datetime | None
    last_error: str | None
    usage_stats: AgentUsageStats


class InternalTenantAgents(BaseModel):
    tenant_id: uuid.UUID
    agents: list[InternalTenantAgent]
