"""SQL for the staff views of tenants (list, detail, a tenant's agents)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from alquimista_ops.core.reads import Query, Reads
from alquimista_ops.core.schema import (
    agents,
    plans,
    tenant_agents,
    tenant_counts,
    tenant_integrations,
    tenant_usage_cumulative,
    tenant_usage_totals,
    tenant_users,
    tenants,
)
from alquimista_ops.core.types import bigint_or_zero
from alquimista_ops.integrations.queries import PUBLIC_COLUMNS
from alquimista_ops.usage.queries import agent_usage_subquery

SORT_COLUMNS = {
    "name": tenants.c.name_search,
    "created_at": tenants.c.created_at,
    "mrr_estimate": tenants.c.mrr_estimate,
}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which filters of the tenant list are on (the statement's shape) and their values."""

    by_status: bool
    by_plan: bool
    by_segment: bool
    by_name: bool
    by_digits: bool
    params: dict[str, Any]
    name_indexed: bool = False  # the name's term can use the trigram index

    @property
    def shape(self) -> tuple[bool, bool, bool, bool, bool, bool]:
        return (
            self.by_status,
            self.by_plan,
            self.by_segment,
            self.by_name,
            self.by_digits,
            self.name_indexed,
        )


# Three letters or digits in a row: a trigram that pg_trgm's index can look up.
_TRIGRAM = re.compile(r"[^\W_]{3}")


def list_filter(
    status: str, plan: str | None, segment: str | None, name_fold: str | None, digits: str | None
) -> ListFilter:
    params: dict[str, Any] = {"status": status, "plan": plan, "segment": segment}
    if name_fold:
        params["name_like"] = f"%{_like_escape(name_fold)}%"
    if digits:
        params["cnpj_like"] = f"%{digits}%"
    return ListFilter(
        status != "all",
        plan is not None,
        segment is not None,
        bool(name_fold),
        bool(digits),
        params,
        bool(name_fold and _TRIGRAM.search(name_fold)),
    )


def _conditions(
    t: sa.FromClause,
    by_status: bool,
    by_plan: bool,
    by_segment: bool,
    by_name: bool,
    by_digits: bool,
    name_indexed: bool,
) -> list[Any]:
    conditions: list[Any] = []
    if by_status:
        conditions.append(t.c.status == sa.bindparam("status"))
    if by_plan:
        conditions.append(t.c.plan == sa.bindparam("plan"))
    if by_segment:
        conditions.append(t.c.segment == sa.bindparam("segment"))
    matches: list[Any] = []
    if by_name:
        # ``name_search LIKE '%term%'`` is what the trigram index of migration 0011 serves. A
        # term without three letters or digits in a row has no trigram to look up: the index
        # would be read whole (2.3-2.5 ms against 0.9-1.3 ms for reading every tenant, on the
        # large data set), so it is matched on ``name_search || ''``, which no index serves.
        name = (
            t.c.name_search if name_indexed else t.c.name_search.op("||")(sa.literal_column("''"))
        )
        matches.append(name.like(sa.bindparam("name_like"), escape="\\"))
    if by_digits:
        matches.append(t.c.cnpj.like(sa.bindparam("cnpj_like")))
    if matches:
        conditions.append(sa.or_(*matches))
    return conditions


def _requests_since() -> sa.ColumnElement[Any]:
    """A tenant's requests from ``:before`` + 1 through the last day with usage: its running
    total at the last day minus the one at ``:before`` (``tenant_usage_cumulative``: two
    index-only reads; 0 when the last day is not after ``:before`` or the tenant has no row)."""
    c = tenant_usage_cumulative
    before = sa.bindparam("before", type_=sa.Date())
    last_day = sa.select(sa.func.max(c.c.date)).scalar_subquery()
    e, s = c.alias("e"), c.alias("s")
    at_end = (
        sa.select(e.c.total_requests)
        .where(e.c.tenant_id == tenants.c.id, e.c.date == last_day, e.c.date > before)
        .scalar_subquery()
    )
    at_start = (
        sa.select(s.c.total_requests)
        .where(s.c.tenant_id == tenants.c.id, s.c.date == before)
        .scalar_subquery()
    )
    return sa.func.coalesce(at_end - sa.func.coalesce(at_start, 0), 0)


@functools.cache
def _page_statement(
    sort_by: str, descending: bool, shape: tuple[bool, bool, bool, bool, bool, bool]
) -> Query:
    """The number of matching tenants (``matching``) with one page of them (``:limit``,
    ``:offset``) and their counters: one row per tenant of the page, or a single row without
    a tenant (null ``id``) when the page is empty. One statement per (sort, direction, filters
    on) shape."""
    column = SORT_COLUMNS[sort_by]
    order = [column.desc() if descending else column.asc(), tenants.c.id]
    # The page is chosen on ``tenants`` alone; the counters are then computed only for the
    # rows of the page (not for the rows skipped by the offset).
    page = (
        sa.select(tenants.c.id.label("page_id"))
        .where(*_conditions(tenants, *shape))
        .order_by(*order)
        .limit(sa.bindparam("limit"))
        .offset(sa.bindparam("offset"))
        .subquery("page")
    )
    # active agents and users from ``tenant_counts`` (kept by triggers): two correlated counts
    # per row were about half of PostgreSQL's time for a page of 50 (pgbench 1.92 -> 1.46 ms)
    counts = tenant_counts
    listed = (
        sa.select(
            tenants.c.id,
            tenants.c.name,
            tenants.c.cnpj,
            tenants.c.segment,
            tenants.c.plan,
            tenants.c.status,
            tenants.c.mrr_estimate,
            tenants.c.created_at,
            bigint_or_zero(counts.c.active_agents).label("active_agents"),
            bigint_or_zero(counts.c.active_users).label("active_users"),
            _requests_since().label("requests_last_30_days"),
            column.label("sort_key"),
        )
        .join(page, page.c.page_id == tenants.c.id)
        .outerjoin(counts, counts.c.tenant_id == tenants.c.id)
        .subquery("listed")
    )
    counted = tenants.alias("counted")
    matching = (
        sa.select(sa.func.count().label("matching"))
        .select_from(counted)
        .where(*_conditions(counted, *shape))
        .subquery("matching")
    )
    sort_key = listed.c.sort_key.desc() if descending else listed.c.sort_key.asc()
    return Query(
        sa.select(matching.c.matching, listed)
        .select_from(matching.outerjoin(listed, sa.true()))
        .order_by(sort_key, listed.c.id)
    )


async def tenant_page(
    reads: Reads,
    filters: ListFilter,
    sort_by: str,
    descending: bool,
    limit: int,
    offset: int,
    usage_since: date,
) -> tuple[list[Any], int]:
    """One page of tenants with their counters and the number of matching tenants (also for
    an empty page, e.g. an offset past the end), in one round trip."""
    params = {
        **filters.params,
        "limit": limit,
        "offset": offset,
        "before": usage_since - timedelta(days=1),
    }
    rows = await reads.all(_page_statement(sort_by, descending, filters.shape), **params)
    return [row for row in rows if row.id is not None], int(rows[0].matching)


def _usage_windows() -> sa.Subquery:
    """Requests of the last 7 (from ``:since_7``) and 30 days (``:since_30`` .. ``:today``) and
    the 30-day success/latency figures of ``:tenant_id`` (always one row)."""
    t = tenant_usage_totals
    return (
        sa.select(
            sa.func.coalesce(
                sa.func.sum(t.c.total_requests).filter(t.c.date >= sa.bindparam("since_7")), 0
            ).label("requests_7"),
            sa.func.coalesce(sa.func.sum(t.c.total_requests), 0).label("requests_30"),
            sa.func.coalesce(sa.func.sum(t.c.successful_requests), 0).label("successful_30"),
            sa.func.coalesce(sa.func.sum(t.c.response_ms_weighted), 0).label("weighted_ms_30"),
        )
        .where(
            t.c.tenant_id == sa.bindparam("tenant_id"),
            t.c.date >= sa.bindparam("since_30"),
            t.c.date <= sa.bindparam("today"),
        )
        .subquery("windows")
    )


_WINDOWS = _usage_windows()
# The tenant's row, its plan's limits, the requests of the last 7 and 30 days and the 30-day
# success/latency figures (``requests_7``, ``requests_30``, ``successful_30``,
# ``weighted_ms_30``): one row, or none (no such tenant).
TENANT_WITH_WINDOWS = Query(
    sa.select(
        tenants,
        plans.c.max_agents,
        plans.c.max_users,
        plans.c.max_requests_per_month,
        *_WINDOWS.c,
    )
    .select_from(tenants.join(plans, plans.c.name == tenants.c.plan).join(_WINDOWS, sa.true()))
    .where(tenants.c.id == sa.bindparam("tenant_id"))
)


def usage_windows_params(today: date) -> dict[str, date]:
    return {
        "since_7": today - timedelta(days=6),
        "since_30": today - timedelta(days=29),
        "today": today,
    }


TENANT_USERS = Query(
    sa.select(
        tenant_users.c.id,
        tenant_users.c.email,
        tenant_users.c.full_name,
        tenant_users.c.role,
        tenant_users.c.status,
        tenant_users.c.last_login_at,
        tenant_users.c.created_at,
    )
    .where(tenant_users.c.tenant_id == sa.bindparam("tenant_id"))
    .order_by(tenant_users.c.full_name, tenant_users.c.id)
    .limit(sa.bindparam("limit"))
)

_TENANT_AGENTS = (
    sa.select(
        agents.c.id,
        agents.c.name,
        agents.c.display_name,
        agents.c.category,
        agents.c.version,
        tenant_agents.c.id.label("tenant_agent_id"),
        tenant_agents.c.status,
        tenant_agents.c.config,
        tenant_agents.c.activated_at,
        tenant_agents.c.deactivated_at,
        tenant_agents.c.last_used_at,
        tenant_agents.c.last_error,
        tenant_agents.c.total_requests,
        tenant_agents.c.total_errors,
    )
    .select_from(tenant_agents.join(agents, agents.c.id == tenant_agents.c.agent_id))
    .where(tenant_agents.c.tenant_id == sa.bindparam("tenant_id"))
    .order_by(agents.c.display_name, agents.c.id)
)
TENANT_AGENTS = Query(_TENANT_AGENTS)


def _tenant_agents_with_usage() -> sa.Select[Any]:
    """The tenant ``:tid`` (one row per agent it has, or one row with a null ``id`` when it has
    none; no row when it does not exist), each agent with its usage over ``:start`` ..
    ``:end`` (null when it has none)."""
    usage = agent_usage_subquery()
    with_agents = tenant_agents.join(agents, agents.c.id == tenant_agents.c.agent_id).outerjoin(
        usage, usage.c.agent_id == tenant_agents.c.agent_id
    )
    measures = [c for c in usage.c if c.name != "agent_id"]
    return (
        sa.select(
            *(c for c in _TENANT_AGENTS.selected_columns),
            usage.c.agent_id.label("usage_agent_id"),
            *measures,
        )
        .select_from(tenants.outerjoin(with_agents, tenant_agents.c.tenant_id == tenants.c.id))
        .where(tenants.c.id == sa.bindparam("tid"))
        .order_by(agents.c.display_name, agents.c.id)
    )


TENANT_AGENTS_WITH_USAGE = Query(_tenant_agents_with_usage())

TENANT_INTEGRATIONS = Query(
    sa.select(*PUBLIC_COLUMNS)  # never credentials_encrypted
    .where(tenant_integrations.c.tenant_id == sa.bindparam("tenant_id"))
    .order_by(
        tenant_integrations.c.integration_type,
        tenant_integrations.c.integration_name,
        tenant_integrations.c.id,
    )
)


def _created_in(start: str, end: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        tenants.c.created_at >= sa.bindparam(start), tenants.c.created_at < sa.bindparam(end)
    )


# How many tenants were created in each of two [start, end) ranges (``current``: ``start`` ..
# ``end``; ``previous``: ``prev_start`` .. ``prev_end``), in one pass.
TENANTS_CREATED_IN_TWO_RANGES = Query(
    sa.select(
        sa.func.count().filter(_created_in("start", "end")).label("current"),
        sa.func.count().filter(_created_in("prev_start", "prev_end")).label("previous"),
    ).where(
        sa.or_(_created_in("start", "end"), _created_in("prev_start", "prev_end")),
    )
)
