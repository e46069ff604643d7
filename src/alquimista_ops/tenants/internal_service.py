"""Staff views of tenants: the list (filters, search, sort, pages), a tenant's detail and its
agents with configuration and usage."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.errors import NotFound
from alquimista_ops.core.numbers import rate, weighted_avg
from alquimista_ops.core.params import Page, Period
from alquimista_ops.core.reads import Reads
from alquimista_ops.core.search import SearchTerm
from alquimista_ops.incidents.service import recent_tenant_incidents
from alquimista_ops.tenants import internal_queries as queries
from alquimista_ops.tenants.service import tenant_fields

MAX_DETAIL_USERS = 200
RECENT_INCIDENTS = 5


async def list_tenants(
    reads: Reads,
    *,
    status: str,
    plan: str | None,
    segment: str | None,
    search: SearchTerm | None,
    sort_by: str,
    sort_order: str,
    page: Page,
    today: date | None = None,
) -> dict[str, Any]:
    today = today or utctoday()
    filters = queries.list_filter(
        status,
        plan,
        segment,
        search.folded if search else None,
        search.digits if search else None,
    )
    rows, total = await queries.tenant_page(
        reads,
        filters,
        sort_by,
        sort_order == "desc",
        page.limit,
        page.offset,
        today - timedelta(days=29),
    )
    return {
        "tenants": [
            {
                **tenant_fields(row),
                "active_agents": int(row.active_agents),
                "active_users": int(row.active_users),
                "requests_last_30_days": int(row.requests_last_30_days),
            }
            for row in rows
        ],
        "total": total,
        "limit": page.limit,
        "offset": page.offset,
    }


async def tenant_detail(reads: Reads, tenant_id: uuid.UUID) -> dict[str, Any]:
    windows = queries.usage_windows_params(utctoday())
    row, incidents, users, agents, integrations = await reads.gather(  # one round trip
        reads.first(queries.TENANT_WITH_WINDOWS, tenant_id=tenant_id, **windows),
        recent_tenant_incidents(reads, tenant_id, RECENT_INCIDENTS),
        reads.all(queries.TENANT_USERS, tenant_id=tenant_id, limit=MAX_DETAIL_USERS),
        reads.all(queries.TENANT_AGENTS, tenant_id=tenant_id),
        reads.all(queries.TENANT_INTEGRATIONS, tenant_id=tenant_id),
    )
    if row is None:
        raise NotFound(f"Tenant {tenant_id} not found", details={"field": "tenant_id"})
    return {
        "tenant": {
            **tenant_fields(row),
            "updated_at": row.updated_at,
            "churned_at": row.churned_at,
            "limits": {
                "max_agents": row.max_agents,
                "max_users": row.max_users,
                "max_requests_per_month": row.max_requests_per_month,
            },
        },
        "users": [u._asdict() for u in users],
        "agents": [
            {
                "id": a.id,
                "name": a.name,
                "display_name": a.display_name,
                "category": a.category,
                "status": a.status,
                "activated_at": a.activated_at,
                "deactivated_at": a.deactivated_at,
                "last_used_at": a.last_used_at,
            }
            for a in agents
        ],
        "integrations": [
            {
                "id": i.id,
                "type": i.integration_type,
                "name": i.integration_name,
                "status": i.status,
                "config": i.config or {},
                "last_sync_at": i.last_sync_at,
                "last_sync_status": i.last_sync_status,
                "last_error": i.last_error,
                "sync_count": int(i.sync_count),
                "error_count": int(i.error_count),
            }
            for i in integrations
        ],
        "usage_summary": {
            "requests_last_7_days": int(row.requests_7),
            "requests_last_30_days": int(row.requests_30),
            "success_rate_last_30_days": rate(row.successful_30, row.requests_30),
            "avg_response_time_ms_last_30_days": weighted_avg(row.weighted_ms_30, row.requests_30),
        },
        "recent_incidents": [
            {
                "id": e.id,
                "severity": e.severity,
                "title": e.title,
                "description": e.description,
                "category": e.event_category,
                "created_at": e.created_at,
                "resolved_at": e.resolved_at,
            }
            for e in incidents
        ],
    }


async def tenant_agents(reads: Reads, tenant_id: uuid.UUID) -> dict[str, Any]:
    """A tenant's agents with configuration and lifetime usage (from the daily rollup)."""
    rows = await reads.all(
        queries.TENANT_AGENTS_WITH_USAGE, tid=tenant_id, start=date(1970, 1, 1), end=utctoday()
    )
    if not rows:  # one row with a null id for a tenant without agents; none for no tenant
        raise NotFound(f"Tenant {tenant_id} not found", details={"field": "tenant_id"})
    result = []
    for a in rows:
        if a.id is None:
            continue
        stats = a if a.usage_agent_id is not None else None
        total = int(stats.total_requests) if stats else 0
        result.append(
            {
                "id": a.id,
                "tenant_agent_id": a.tenant_agent_id,
                "name": a.name,
                "display_name": a.display_name,
                "category": a.category,
                "version": a.version,
                "status": a.status,
                "config": a.config or {},
                "activated_at": a.activated_at,
                "deactivated_at": a.deactivated_at,
                "last_error": a.last_error,
                "usage_stats": {
                    "total_requests": total,
                    "failed_requests": int(stats.failed_requests) if stats else 0,
                    "success_rate": rate(stats.successful_requests, total) if stats else 0.0,
                    "avg_response_time_ms": (
                        weighted_avg(stats.weighted_response_ms, total) if stats else 0.0
                    ),
                    "last_request_at": a.last_used_at,
                },
            }
        )
    return {"tenant_id": tenant_id, "agents": result}


async def new_tenants(reads: Reads, period: Period, previous: Period) -> tuple[int, int]:
    """Tenants created during ``period`` and during ``previous`` (UTC days, inclusive)."""
    (start, end), (prev_start, prev_end) = _utc_range(period), _utc_range(previous)
    row = await reads.one(
        queries.TENANTS_CREATED_IN_TWO_RANGES,
        start=start,
        end=end,
        prev_start=prev_start,
        prev_end=prev_end,
    )
    return int(row.current), int(row.previous)


def _utc_range(period: Period) -> tuple[datetime, datetime]:
    start = datetime.combine(period.start, time(), UTC)
    return start, datetime.combine(period.end + timedelta(days=1), time(), UTC)
