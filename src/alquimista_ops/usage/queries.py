"""SQL over the daily rollup (``tenant_usage_daily``) for tenant-level usage figures.

Averages are request-weighted: ``sum(avg_response_time_ms * total_requests) / sum(total)``.

Statements are built once per shape (with or without an agent filter) and take their values as
bound parameters: ``tid``, ``start``, ``end`` (inclusive) and ``agent_id`` when filtered.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa

from alquimista_ops.core.reads import Query
from alquimista_ops.core.schema import agents, tenant_agents, tenant_usage_daily
from alquimista_ops.core.types import (
    UUIDType,
    bigint_or_zero,
    double_or_zero,
    kind_column,
    typed_null,
)

u = tenant_usage_daily


def _measures() -> list[sa.ColumnElement[Any]]:
    return [
        bigint_or_zero(sa.func.sum(u.c.total_requests)).label("total_requests"),
        bigint_or_zero(sa.func.sum(u.c.successful_requests)).label("successful_requests"),
        bigint_or_zero(sa.func.sum(u.c.failed_requests)).label("failed_requests"),
        double_or_zero(sa.func.sum(u.c.avg_response_time_ms * u.c.total_requests)).label(
            "weighted_response_ms"
        ),
        bigint_or_zero(sa.func.sum(u.c.total_tokens_used)).label("total_tokens"),
        double_or_zero(sa.func.sum(u.c.total_cost_usd)).label("total_cost_usd"),
    ]


def _scope(by_agent: bool) -> list[Any]:
    conditions: list[Any] = [
        u.c.tenant_id == sa.bindparam("tid"),
        u.c.date >= sa.bindparam("start"),
        u.c.date <= sa.bindparam("end"),
    ]
    if by_agent:
        conditions.append(u.c.agent_id == sa.bindparam("agent_id"))
    return conditions


def agent_usage_subquery() -> sa.Subquery:
    """Per agent of the tenant ``tid``, its measures over ``start..end`` (bound parameters):
    for statements built once that join the usage of a tenant's agents."""
    return (
        sa.select(u.c.agent_id, *_measures())
        .where(*_scope(False))
        .group_by(u.c.agent_id)
        .subquery("agent_usage")
    )


# A row when the agent (``agent_id``) was ever activated for the tenant (``tid``).
TENANT_AGENT = Query(
    sa.select(tenant_agents.c.id).where(
        tenant_agents.c.tenant_id == sa.bindparam("tid"),
        tenant_agents.c.agent_id == sa.bindparam("agent_id"),
    )
)


# -- the usage report: summary, days and agents in one statement -----------------------------
SUMMARY, DAY, AGENT = 0, 1, 2
REPORT_MEASURES = 5  # the report's columns: kind, date, agent_id, name, display_name, measures


@cache
def usage_report(by_agent: bool, with_agents: bool) -> Query:
    """The tenant's (``tid``) usage over ``start..end``: the summary row (kind ``SUMMARY``), one
    row per day with usage (``DAY``, by date) and, with ``with_agents``, one per agent
    (``AGENT``, most requests first); with ``by_agent``, of one agent (``agent_id``) only."""
    conditions = _scope(by_agent)
    summary = sa.select(
        kind_column(SUMMARY),
        typed_null(sa.Date(), "date"),
        typed_null(UUIDType, "agent_id"),
        typed_null(sa.String(), "name"),
        typed_null(sa.String(), "display_name"),
        *_measures(),
    ).where(*conditions)
    days = (
        sa.select(
            kind_column(DAY),
            u.c.date,
            typed_null(UUIDType, "agent_id"),
            typed_null(sa.String(), "name"),
            typed_null(sa.String(), "display_name"),
            *_measures(),
        )
        .where(*conditions)
        .group_by(u.c.date)
    )
    per_agent = (
        sa.select(
            kind_column(AGENT),
            typed_null(sa.Date(), "date"),
            agents.c.id.label("agent_id"),
            agents.c.name,
            agents.c.display_name,
            *_measures(),
        )
        .select_from(u.join(agents, agents.c.id == u.c.agent_id))
        .where(*conditions)
        .group_by(agents.c.id, agents.c.name, agents.c.display_name)
    )
    report = sa.union_all(summary, days, per_agent) if with_agents else sa.union_all(summary, days)
    c = report.selected_columns
    # days by date; agents by requests (most first), then name
    return Query(report.order_by(c.kind, c.date, c.total_requests.desc(), c.name))
