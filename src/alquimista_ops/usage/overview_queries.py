"""SQL for the platform usage overview, over the derived totals tables (``usage.totals``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.reads import Query, Reads
from alquimista_ops.core.schema import (
    agent_deployments,
    agent_usage_totals,
    agents,
    platform_usage_totals,
    tenant_totals,
    tenant_usage_cumulative,
    tenants,
    usage_period_rankings,
    usage_period_snapshots,
)
from alquimista_ops.core.types import bigint_or_zero, double_or_zero, kind_column, typed_null

TOP = 10  # tenants and agents in the overview's rankings


def _measures(t: sa.Table) -> list[sa.ColumnElement[Any]]:
    return [
        bigint_or_zero(sa.func.sum(t.c.total_requests)).label("total_requests"),
        bigint_or_zero(sa.func.sum(t.c.successful_requests)).label("successful_requests"),
        bigint_or_zero(sa.func.sum(t.c.failed_requests)).label("failed_requests"),
        double_or_zero(sa.func.sum(t.c.response_ms_weighted)).label("weighted_response_ms"),
        bigint_or_zero(sa.func.sum(t.c.total_tokens_used)).label("total_tokens"),
        double_or_zero(sa.func.sum(t.c.total_cost_usd)).label("total_cost_usd"),
    ]


def _active_deployments() -> sa.Select[Any]:
    """Active activations per agent (``agent_deployments``, kept by the database's triggers:
    counting them in ``tenant_agents`` was 0.44 ms of PostgreSQL per overview, profiled)."""
    d = agent_deployments
    return sa.select(d.c.agent_id, d.c.active.label("deployments")).where(d.c.active > 0)


def _counts() -> sa.Subquery:
    """The platform's tenants and active tenants (``tenant_totals``, kept by triggers)."""
    t = tenant_totals
    return sa.select(
        bigint_or_zero(sa.func.sum(t.c.tenants)).label("total_tenants"),
        bigint_or_zero(sa.func.sum(t.c.tenants).filter(t.c.status == "active")).label(
            "active_tenants"
        ),
    ).subquery()


# The platform's measures over ``start`` .. ``end`` (one row).
PLATFORM_SUMMARY = Query(
    sa.select(*_measures(platform_usage_totals)).where(
        platform_usage_totals.c.date >= sa.bindparam("start"),
        platform_usage_totals.c.date <= sa.bindparam("end"),
    )
)


_SUMMARY, _DAY = 0, 1
_DAY_COLUMNS = (
    ("total_requests", "total_requests", bigint_or_zero),
    ("successful_requests", "successful_requests", bigint_or_zero),
    ("failed_requests", "failed_requests", bigint_or_zero),
    ("response_ms_weighted", "weighted_response_ms", double_or_zero),
    ("total_tokens_used", "total_tokens", bigint_or_zero),
    ("total_cost_usd", "total_cost_usd", double_or_zero),
)


def _platform_days() -> sa.CompoundSelect:
    """The summary row (tenant counts and the period's measures) first, then one row per day
    with platform totals in the period, by date."""
    t = platform_usage_totals
    counts = _counts()
    in_period = sa.and_(t.c.date >= sa.bindparam("start"), t.c.date <= sa.bindparam("end"))
    summary = sa.select(
        kind_column(_SUMMARY),
        counts.c.total_tenants,
        counts.c.active_tenants,
        typed_null(sa.Date(), "date"),
        typed_null(sa.Integer(), "tenants_with_usage"),
        *_measures(t),
    ).select_from(counts.outerjoin(t, in_period))
    summary = summary.group_by(counts.c.total_tenants, counts.c.active_tenants)
    days = sa.select(
        kind_column(_DAY),
        typed_null(sa.BigInteger(), "total_tenants"),
        typed_null(sa.BigInteger(), "active_tenants"),
        t.c.date,
        t.c.tenants_with_usage,
        *(cast(t.c[name]).label(label) for name, label, cast in _DAY_COLUMNS),
    ).where(in_period)
    both = sa.union_all(summary, days)
    c = both.selected_columns
    return both.order_by(c.kind, c.date)


PLATFORM_DAYS = Query(_platform_days())
DAY_MEASURES = 5  # a platform day's columns: kind, two counts, date, tenants_with_usage, measures


def _top_tenants() -> sa.Select[Any]:
    """The ``:limit`` tenants with most requests over ``:before`` + 1 .. ``:end``, with their
    figures and how many tenants had requests in the period (on every row).

    A tenant's figures over the period are its running totals at the last day up to ``:end``
    minus those at ``:before`` (``tenant_usage_cumulative``): ranking reads two index ranges
    of ``total_requests`` only; the other measures are read for the ``limit`` winners.
    """
    c = tenant_usage_cumulative
    before = sa.bindparam("before", type_=sa.Date())
    last_day = (
        sa.select(sa.func.max(c.c.date)).where(c.c.date <= sa.bindparam("end")).scalar_subquery()
    )
    e, s = c.alias("e"), c.alias("s")
    requests = e.c.total_requests - sa.func.coalesce(s.c.total_requests, 0)  # BIGINT
    ranked = (
        sa.select(
            e.c.tenant_id,
            requests.label("requests"),
            sa.func.count().over().label("tenants_with_usage"),
        )
        .select_from(e.outerjoin(s, sa.and_(s.c.tenant_id == e.c.tenant_id, s.c.date == before)))
        .where(e.c.date == last_day, e.c.date > before, requests > 0)
        .order_by(sa.desc("requests"), e.c.tenant_id)
        .limit(sa.bindparam("limit"))
        .subquery()
    )
    e2, s2 = c.alias("e2"), c.alias("s2")
    return (
        sa.select(
            ranked.c.tenant_id,
            ranked.c.tenants_with_usage,
            *(
                cast(e2.c[name] - sa.func.coalesce(s2.c[name], 0)).label(label)
                for name, label, cast in _DAY_COLUMNS
            ),
            tenants.c.name,
            tenants.c.plan,
            tenants.c.segment,
            tenants.c.status,
        )
        .select_from(
            ranked.join(e2, sa.and_(e2.c.tenant_id == ranked.c.tenant_id, e2.c.date == last_day))
            .outerjoin(s2, sa.and_(s2.c.tenant_id == ranked.c.tenant_id, s2.c.date == before))
            .join(tenants, tenants.c.id == ranked.c.tenant_id)
        )
        .order_by(ranked.c.requests.desc(), ranked.c.tenant_id)
    )


TOP_TENANTS = Query(_top_tenants())
Ranking = tuple[Sequence[Any], int]


def _top_tenants_params(start: date, end: date, limit: int) -> dict[str, Any]:
    return {"before": start - timedelta(days=1), "end": end, "limit": limit}


def _top_tenants_of(rows: Sequence[Any]) -> Ranking:
    return (rows, int(rows[0].tenants_with_usage)) if rows else ([], 0)


def top_tenants(conn: Connection, start: date, end: date, limit: int) -> Ranking:
    """The ``limit`` tenants with most requests in the period, with their figures, and how many
    tenants had requests in it (in a write transaction: ``usage.totals``)."""
    rows = TOP_TENANTS.execute(conn, **_top_tenants_params(start, end, limit)).all()
    return _top_tenants_of(rows)


async def read_top_tenants(reads: Reads, start: date, end: date, limit: int) -> Ranking:
    """``top_tenants`` on the read path."""
    return _top_tenants_of(await reads.all(TOP_TENANTS, **_top_tenants_params(start, end, limit)))


def _agents() -> sa.Select[Any]:
    """Every agent with its active deployments and its measures over ``:start`` .. ``:end``:
    those with usage rows in the period first, by requests (desc) and name, then the others."""
    t = agent_usage_totals
    deployments = _active_deployments().subquery()
    grouped = (
        sa.select(t.c.agent_id, *_measures(t))
        .where(t.c.date >= sa.bindparam("start"), t.c.date <= sa.bindparam("end"))
        .group_by(t.c.agent_id)
        .subquery()
    )
    return (
        sa.select(
            agents.c.id.label("agent_id"),
            (grouped.c.agent_id.is_not(None)).label("has_usage"),
            *(c for c in grouped.c if c.name != "agent_id"),
            agents.c.name,
            agents.c.display_name,
            agents.c.category,
            sa.func.coalesce(deployments.c.deployments, 0).label("active_deployments"),
        )
        .select_from(
            agents.outerjoin(grouped, grouped.c.agent_id == agents.c.id).outerjoin(
                deployments, deployments.c.agent_id == agents.c.id
            )
        )
        .order_by(grouped.c.agent_id.is_(None), grouped.c.total_requests.desc(), agents.c.name)
    )


AGENTS = Query(_agents())


def _top_agents_of(rows: Sequence[Any], limit: int) -> Ranking:
    deployed = sum(int(row.active_deployments) for row in rows)
    return [row for row in rows if row.has_usage][:limit], deployed


def top_agents(conn: Connection, start: date, end: date, limit: int) -> Ranking:
    """The ``limit`` agents with most requests in the period (among those with usage rows in
    it), with their figures and active deployments, and the platform's active deployments (of
    every agent) (in a write transaction: ``usage.totals``)."""
    return _top_agents_of(AGENTS.execute(conn, start=start, end=end).all(), limit)


async def read_top_agents(reads: Reads, start: date, end: date, limit: int) -> Ranking:
    """``top_agents`` on the read path."""
    return _top_agents_of(await reads.all(AGENTS, start=start, end=end), limit)


def _period_rankings() -> sa.Select[Any]:
    """The stored rankings of ``:start`` .. ``:end`` (``usage_period_rankings``), the first
    ``:top`` of each: tenants and agents with their measures and position, each with its
    current name (and plan, segment and status for a tenant; display name, category and active
    deployments for an agent); on every row the period's tenants with usage and the platform's
    active deployments (of every agent). One row with a null ``kind`` for a snapshot without
    rankings; no row without a snapshot."""
    s, r = usage_period_snapshots, usage_period_rankings
    deployments = _active_deployments().cte("deployments")
    deployed = sa.select(bigint_or_zero(sa.func.sum(deployments.c.deployments))).scalar_subquery()
    return (
        sa.select(
            s.c.tenants_with_usage,
            deployed.label("agents_deployed"),
            r.c.kind,
            r.c.position,
            r.c.tenant_id,
            r.c.agent_id,
            *(cast(r.c[name]).label(label) for name, label, cast in _DAY_COLUMNS),
            sa.func.coalesce(tenants.c.name, agents.c.name).label("name"),
            tenants.c.plan,
            tenants.c.segment,
            tenants.c.status,
            agents.c.display_name,
            agents.c.category,
            sa.func.coalesce(deployments.c.deployments, 0).label("active_deployments"),
        )
        .select_from(
            s.outerjoin(
                r,
                sa.and_(
                    r.c.period_start == s.c.period_start,
                    r.c.period_end == s.c.period_end,
                    r.c.position <= sa.bindparam("top"),
                ),
            )
            .outerjoin(tenants, tenants.c.id == r.c.tenant_id)
            .outerjoin(agents, agents.c.id == r.c.agent_id)
            .outerjoin(deployments, deployments.c.agent_id == r.c.agent_id)
        )
        .where(s.c.period_start == sa.bindparam("start"), s.c.period_end == sa.bindparam("end"))
        .order_by(r.c.kind, r.c.position)
    )


PERIOD_RANKINGS = Query(_period_rankings())


def stored_rankings(
    rows: Sequence[Any],
) -> tuple[Sequence[Any], int, Sequence[Any], int] | None:
    """(top tenants, tenants with usage, top agents, active deployments) from the rows of
    ``PERIOD_RANKINGS`` (``top`` of each, at most ``TOP``: what is stored); None when the
    period has none stored (no row)."""
    if not rows:
        return None
    first = rows[0]
    return (
        [row for row in rows if row.kind == "tenant"],
        int(first.tenants_with_usage),
        [row for row in rows if row.kind == "agent"],
        int(first.agents_deployed),
    )
