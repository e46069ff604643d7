"""The platform usage overview for staff: global figures, top tenants and agents, daily trend.

Every ratio is request-weighted (success rate = successful / total requests; average response
time = sum(avg x requests) / sum(requests)), computed over the daily totals tables.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from alquimista_ops.core.params import Period
from alquimista_ops.core.reads import Reads
from alquimista_ops.usage import overview_queries as queries
from alquimista_ops.usage.service import ZERO_MEASURES, figures, measures


async def usage_overview(reads: Reads, period: Period, top: int = queries.TOP) -> dict[str, Any]:
    """The overview of ``period``, with the ``top`` (at most ``queries.TOP``) tenants and
    agents of its rankings."""
    start, end = period.start, period.end
    (counts, *days), ranking_rows = await reads.gather(
        reads.all(queries.PLATFORM_DAYS, start=start, end=end),
        reads.all(queries.PERIOD_RANKINGS, start=start, end=end, top=top),
    )
    summary = measures(counts)
    stored = queries.stored_rankings(ranking_rows)
    if stored is not None:
        top_tenants, tenants_with_usage, top_agents, agents_deployed = stored
    else:  # not a standard period of today or tomorrow, or not refreshed since
        (top_tenants, tenants_with_usage), (top_agents, agents_deployed) = await reads.gather(
            queries.read_top_tenants(reads, start, end, top),
            queries.read_top_agents(reads, start, end, top),
        )
    by_day = {_as_date(row.date): row for row in days}
    m = queries.DAY_MEASURES
    daily = []
    for day in period.dates():
        row = by_day.get(day)
        if row is None:
            daily.append({"date": day, **ZERO_MEASURES, "tenants_with_usage": 0})
        else:  # positional: cheaper per day than attribute access
            used = int(row.tenants_with_usage)
            daily.append({"date": day, **figures(*row[m:]), "tenants_with_usage": used})
    return {
        "period": period.as_dict(),
        "global_stats": {
            "total_tenants": int(counts.total_tenants),
            "active_tenants": int(counts.active_tenants),
            "tenants_with_usage": tenants_with_usage,
            "total_agents_deployed": agents_deployed,
            "total_requests": summary["total_requests"],
            "successful_requests": summary["successful_requests"],
            "failed_requests": summary["failed_requests"],
            "global_success_rate": summary["success_rate"],
            "avg_response_time_ms": summary["avg_response_time_ms"],
            "total_tokens": summary["total_tokens"],
            "total_cost_usd": summary["total_cost_usd"],
        },
        "top_tenants": [
            {
                "tenant_id": row.tenant_id,
                "name": row.name,
                "plan": row.plan,
                "segment": row.segment,
                "status": row.status,
                **measures(row),
            }
            for row in top_tenants
        ],
        "top_agents": [
            {
                "agent_id": row.agent_id,
                "name": row.name,
                "display_name": row.display_name,
                "category": row.category,
                "active_deployments": int(row.active_deployments),
                **measures(row),
            }
            for row in top_agents
        ],
        "daily_trends": daily,
    }


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def platform_summary(reads: Reads, period: Period) -> dict[str, Any]:
    """The platform's request measures over one period (e.g. the period before another, to
    show a trend)."""
    return measures(await reads.one(queries.PLATFORM_SUMMARY, start=period.start, end=period.end))


def previous_period(period: Period) -> Period:
    """The period of the same length that ends the day before ``period`` starts."""
    end = period.start - timedelta(days=1)
    return Period(end - timedelta(days=period.days - 1), end, f"previous_{period.label}")
