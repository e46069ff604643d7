"""SQL for the platform usage overview, over the daily totals tables (``usage.totals``)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.schema import (
    agent_usage_totals,
    agents,
    platform_usage_totals,
    tenant_agents,
    tenant_usage_monthly,
    tenant_usage_totals,
    tenants,
)
from alquimista_ops.usage.totals import month_start, next_month


def _measures(t: sa.Table) -> list[sa.ColumnElement[Any]]:
    return [
        sa.func.coalesce(sa.func.sum(t.c.total_requests), 0).label("total_requests"),
        sa.func.coalesce(sa.func.sum(t.c.successful_requests), 0).label("successful_requests"),
        sa.func.coalesce(sa.func.sum(t.c.failed_requests), 0).label("failed_requests"),
        sa.func.coalesce(sa.func.sum(t.c.response_ms_weighted), 0).label("weighted_response_ms"),
        sa.func.coalesce(sa.func.sum(t.c.total_tokens_used), 0).label("total_tokens"),
        sa.func.coalesce(sa.func.sum(t.c.total_cost_usd), 0).label("total_cost_usd"),
    ]


def tenant_counts(conn: Connection) -> Any:
    deployed = (
        sa.select(sa.func.count())
        .select_from(tenant_agents)
        .where(tenant_agents.c.status == "active")
        .scalar_subquery()
    )
    return conn.execute(
        sa.select(
            sa.func.count().label("total_tenants"),
            sa.func.count().filter(tenants.c.status == "active").label("active_tenants"),
            deployed.label("agents_deployed"),
        ).select_from(tenants)
    ).one()


def platform_summary(conn: Connection, start: date, end: date) -> Any:
    t = platform_usage_totals
    return conn.execute(sa.select(*_measures(t)).where(t.c.date >= start, t.c.date <= end)).one()


def platform_by_day(conn: Connection, start: date, end: date) -> list[Any]:
    t = platform_usage_totals
    return list(
        conn.execute(
            sa.select(
                t.c.date,
                t.c.total_requests,
                t.c.successful_requests,
                t.c.failed_requests,
                t.c.response_ms_weighted.label("weighted_response_ms"),
                t.c.total_tokens_used.label("total_tokens"),
                t.c.total_cost_usd,
                t.c.tenants_with_usage,
            )
            .where(t.c.date >= start, t.c.date <= end)
            .order_by(t.c.date)
        )
    )


def _requests_per_tenant(start: date, end: date, today: date) -> sa.Subquery:
    """(tenant_id, requests) rows whose sum per tenant is its requests in ``start..end``.

    Each calendar month the period touches is read the cheaper way: the days inside the period
    from ``tenant_usage_totals``, or the month's row of ``tenant_usage_monthly`` minus the days of
    that month outside the period (negative rows). Days after ``today`` have no rows yet, so a
    period ending today reads its last month from the monthly table alone. Either way the sums
    are exact; ``today`` only guides the choice.
    """
    t, m = tenant_usage_totals, tenant_usage_monthly
    parts: list[sa.Select[Any]] = []
    month = month_start(start)
    while month <= end:
        following = next_month(month)
        first, last = max(start, month), min(end, following - timedelta(days=1))
        inside = (last - first).days + 1
        data_end = min(following - timedelta(days=1), today)
        outside = (first - month).days + max((data_end - last).days, 0)
        if inside <= outside:
            parts.append(
                sa.select(t.c.tenant_id, t.c.total_requests.label("requests")).where(
                    t.c.date >= first, t.c.date <= last
                )
            )
        else:
            parts.append(
                sa.select(m.c.tenant_id, m.c.total_requests.label("requests")).where(
                    m.c.month == month
                )
            )
            if first > month:
                parts.append(
                    sa.select(t.c.tenant_id, -t.c.total_requests).where(
                        t.c.date >= month, t.c.date < first
                    )
                )
            parts.append(
                sa.select(t.c.tenant_id, -t.c.total_requests).where(
                    t.c.date > last, t.c.date < following
                )
            )
        month = following
    return sa.union_all(*parts).subquery()


def top_tenants(
    conn: Connection, start: date, end: date, limit: int, today: date | None = None
) -> tuple[list[Any], int]:
    """The ``limit`` tenants with most requests in the period, with their figures.

    Ranking reads only ``total_requests`` (an index-only scan); the other measures are summed
    for the ``limit`` winners only. ``tenants_with_usage`` counts every tenant with requests.
    """
    t = tenant_usage_totals
    in_period = [t.c.date >= start, t.c.date <= end]
    per_tenant = _requests_per_tenant(start, end, today or utctoday())
    ranked = conn.execute(
        sa.select(
            per_tenant.c.tenant_id,
            sa.func.sum(per_tenant.c.requests).label("requests"),
            sa.func.count().over().label("tenants_with_usage"),
        )
        .group_by(per_tenant.c.tenant_id)
        .having(sa.func.sum(per_tenant.c.requests) > 0)
        .order_by(sa.desc("requests"), per_tenant.c.tenant_id)
        .limit(limit)
    ).all()
    if not ranked:
        return [], 0
    with_usage = int(ranked[0].tenants_with_usage)
    rows = conn.execute(
        sa.select(
            t.c.tenant_id,
            *_measures(t),
            tenants.c.name,
            tenants.c.plan,
            tenants.c.segment,
            tenants.c.status,
        )
        .join(tenants, tenants.c.id == t.c.tenant_id)
        .where(*in_period, t.c.tenant_id.in_([r.tenant_id for r in ranked]))
        .group_by(
            t.c.tenant_id, tenants.c.name, tenants.c.plan, tenants.c.segment, tenants.c.status
        )
        .order_by(sa.desc("total_requests"), t.c.tenant_id)
    ).all()
    return list(rows), with_usage


def top_agents(conn: Connection, start: date, end: date, limit: int) -> list[Any]:
    t = agent_usage_totals
    deployments = (
        sa.select(sa.func.count())
        .where(tenant_agents.c.agent_id == agents.c.id, tenant_agents.c.status == "active")
        .scalar_subquery()
    )
    grouped = (
        sa.select(t.c.agent_id, *_measures(t))
        .where(t.c.date >= start, t.c.date <= end)
        .group_by(t.c.agent_id)
        .subquery()
    )
    return list(
        conn.execute(
            sa.select(
                grouped,
                agents.c.name,
                agents.c.display_name,
                agents.c.category,
                deployments.label("active_deployments"),
            )
            .join(agents, agents.c.id == grouped.c.agent_id)
            .order_by(grouped.c.total_requests.desc(), agents.c.name)
            .limit(limit)
        )
    )
