"""Tenant usage over a period, from the daily rollup."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.auth.deps import TenantScope
from alquimista_ops.core.errors import NotFound
from alquimista_ops.core.fastread import Call
from alquimista_ops.core.params import Period
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


def _ensure_tenant_agent(conn: Connection, tenant_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    if not queries.tenant_has_agent(conn, tenant_id, agent_id):
        raise NotFound(f"Agent {agent_id} not found for this tenant", details={"field": "agent_id"})


def tenant_usage_calls(scope: TenantScope, period: Period, *, with_agents: bool) -> list[Call]:
    """The statements ``tenant_usage`` runs for all of a tenant's agents (no ``agent_id``),
    for ``core.fastread.prefetch``."""
    return [
        queries.usage_report_call(
            scope.tenant_id, period.start, period.end, None, with_agents=with_agents
        )
    ]


def tenant_usage(
    conn: Connection,
    scope: TenantScope,
    period: Period,
    agent_id: uuid.UUID | None,
    *,
    with_agents: bool = True,
) -> dict[str, Any]:
    """The tenant's usage over the period: summary, every day and (unless ``with_agents`` is
    false: a page that shows no per-agent figures) the figures of each agent."""
    if agent_id is not None:
        _ensure_tenant_agent(conn, scope.tenant_id, agent_id)
    summary, days, per_agent = queries.usage_report(
        conn, scope.tenant_id, period.start, period.end, agent_id, with_agents=with_agents
    )
    m = queries.REPORT_MEASURES  # where the six sums start in a report row
    by_day = {row.date: row for row in days}
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
            for row in per_agent
        ]
    return usage
