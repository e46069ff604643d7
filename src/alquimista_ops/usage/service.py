"""Tenant usage over a period, from the daily rollup."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.errors import NotFound
from alquimista_ops.core.params import Period
from alquimista_ops.core.reads import Reads
from alquimista_ops.usage import queries


def measures(row: Any) -> dict[str, Any]:
    return figures(
        row.total_requests,
        row.successful_requests,
        row.failed_requests,
        row.weighted_response_ms,
        row.total_tokens,
        row.total_cost_usd,
    )


def figures(
    total_requests: Any,
    successful_requests: Any,
    failed_requests: Any,
    weighted_response_ms: Any,
    total_tokens: Any,
    total_cost_usd: Any,
) -> dict[str, Any]:
    """``measures`` of the six sums in the order of ``usage.queries`` (positional: cheaper
    per row than attribute access). The ratios are ``core.numbers.rate`` and ``weighted_avg``
    written out: a page computes this for every day and ranked row (same floats, tested)."""
    total = int(total_requests)
    successful = int(successful_requests)
    if total:
        success_rate = round(successful * 100.0 / total, 2)
        avg_response = round(float(weighted_response_ms or 0) / total, 2)
    else:
        success_rate = avg_response = 0.0
    return {
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": int(failed_requests),
        "success_rate": success_rate,
        "avg_response_time_ms": avg_response,
        "total_tokens": int(total_tokens),
        "total_cost_usd": round(float(total_cost_usd), 6),
    }


# the measures of a day without requests (read-only: spread into each answer's own dict)
ZERO_MEASURES: Mapping[str, Any] = MappingProxyType(
    {
        "total_requests": 0,
        "successful_requests": 0,
        "failed_requests": 0,
        "success_rate": 0.0,
        "avg_response_time_ms": 0.0,
        "total_tokens": 0,
        "total_cost_usd": 0.0,
    }
)


async def tenant_usage(
    reads: Reads,
    scope: TenantScope,
    period: Period,
    agent_id: uuid.UUID | None,
    *,
    with_agents: bool = True,
) -> dict[str, Any]:
    """The tenant's usage over the period: summary, every day and (unless ``with_agents`` is
    false: a page that shows no per-agent figures) the figures of each agent; optionally of one
    agent of the tenant's (another is not found)."""
    params: dict[str, Any] = {"tid": scope.tenant_id, "start": period.start, "end": period.end}
    report = queries.usage_report(agent_id is not None, with_agents)
    if agent_id is None:
        rows = await reads.all(report, **params)
    else:
        found, rows = await reads.gather(
            reads.first(queries.TENANT_AGENT, tid=scope.tenant_id, agent_id=agent_id),
            reads.all(report, agent_id=agent_id, **params),
        )
        if found is None:
            raise NotFound(
                f"Agent {agent_id} not found for this tenant", details={"field": "agent_id"}
            )
    m = queries.REPORT_MEASURES  # where the six sums start in a report row
    summary = rows[0]
    by_day = {row.date: row for row in rows if row.kind == queries.DAY}
    daily = []
    for day in period.dates():
        row = by_day.get(day)
        daily.append({"date": day, **(figures(*row[m:]) if row else ZERO_MEASURES)})
    usage: dict[str, Any] = {
        "period": period.as_dict(),
        "summary": figures(*summary[m:]),
        "daily_data": daily,
    }
    if with_agents:
        usage["by_agent"] = [
            {
                "agent_id": row.agent_id,
                "name": row.name,
                "display_name": row.display_name,
                **figures(*row[m:]),
            }
            for row in rows
            if row.kind == queries.AGENT
        ]
    return usage
