"""SQL for the staff views of tenants (list, detail, a tenant's agents)."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import (
    agents,
    plans,
    tenant_agents,
    tenant_integrations,
    tenant_usage_cumulative,
    tenant_usage_totals,
    tenant_users,
    tenants,
)
from alquimista_ops.integrations.queries import PUBLIC_COLUMNS

SORT_COLUMNS = {
    "name": tenants.c.name_search,
    "created_at": tenants.c.created_at,
    "mrr_estimate": tenants.c.mrr_estimate,
}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_conditions(
    status: str, plan: str | None, segment: str | None, name_fold: str | None, digits: str | None
) -> list[Any]:
    conditions: list[Any] = []
    if status != "all":
        conditions.append(tenants.c.status == status)
    if plan is not None:
        conditions.append(tenants.c.plan == plan)
    if segment is not None:
        conditions.append(tenants.c.segment == segment)
    matches: list[Any] = []
    if name_fold:
        matches.append(tenants.c.name_search.like(f"%{_like_escape(name_fold)}%", escape="\\"))
    if digits:
        matches.append(tenants.c.cnpj.like(f"%{digits}%"))
    if matches:
        conditions.append(sa.or_(*matches))
    return conditions


def tenant_page(
    conn: Connection,
    conditions: list[Any],
    sort_by: str,
    descending: bool,
    limit: int,
    offset: int,
    usage_since: date,
) -> tuple[list[Any], int]:
    """One page of tenants with their counters and the number of matching tenants, in one
    round trip (a second one only for an empty page).

    The page (sort, offset, limit) is chosen first on ``tenants`` alone; the counters are then
    computed only for the rows of the page (not for the rows skipped by the offset).
    """
    column = SORT_COLUMNS[sort_by]
    order = [column.desc() if descending else column.asc(), tenants.c.id]
    page = (
        sa.select(
            tenants.c.id.label("page_id"),
            sa.func.row_number().over(order_by=order).label("position"),
            sa.func.count().over().label("matching"),
        )
        .where(*conditions)
        .order_by(*order)
        .limit(limit)
        .offset(offset)
        .subquery()
    )
    active_agents = (
        sa.select(sa.func.count())
        .where(tenant_agents.c.tenant_id == tenants.c.id, tenant_agents.c.status == "active")
        .scalar_subquery()
    )
    active_users = (
        sa.select(sa.func.count())
        .where(tenant_users.c.tenant_id == tenants.c.id, tenant_users.c.status == "active")
        .scalar_subquery()
    )
    requests = sa.func.coalesce(_requests_since(tenants.c.id, usage_since), 0)
    rows = conn.execute(
        sa.select(
            tenants.c.id,
            tenants.c.name,
            tenants.c.cnpj,
            tenants.c.segment,
            tenants.c.plan,
            tenants.c.status,
            tenants.c.mrr_estimate,
            tenants.c.created_at,
            active_agents.label("active_agents"),
            active_users.label("active_users"),
            requests.label("requests_last_30_days"),
            page.c.matching,
        )
        .join(page, page.c.page_id == tenants.c.id)
        .order_by(page.c.position)
    ).all()
    if rows:
        return list(rows), int(rows[0].matching)
    # An empty page (e.g. an offset past the end) still reports how many tenants match.
    total = conn.execute(
        sa.select(sa.func.count()).select_from(tenants).where(*conditions)
    ).scalar_one()
    return [], int(total)


def _requests_since(tenant_id: Any, since: date) -> sa.ScalarSelect[Any]:
    """A tenant's requests from ``since`` through the last day with usage: its running total at
    the last day minus the one at ``since - 1`` (``tenant_usage_cumulative``, two index reads)."""
    c = tenant_usage_cumulative
    before = since - timedelta(days=1)
    last_day = sa.select(sa.func.max(c.c.date)).scalar_subquery()
    e, s = c.alias("e"), c.alias("s")
    return (
        sa.select(e.c.total_requests - sa.func.coalesce(s.c.total_requests, 0))
        .select_from(e.outerjoin(s, sa.and_(s.c.tenant_id == e.c.tenant_id, s.c.date == before)))
        .where(e.c.tenant_id == tenant_id, e.c.date == last_day, e.c.date > before)
        .scalar_subquery()
    )


def tenant_row(conn: Connection, tenant_id: uuid.UUID) -> Any:
    return conn.execute(
        sa.select(
            tenants,
            plans.c.max_agents,
            plans.c.max_users,
            plans.c.max_requests_per_month,
        )
        .join(plans, plans.c.name == tenants.c.plan)
        .where(tenants.c.id == tenant_id)
    ).first()


def tenant_users_of(conn: Connection, tenant_id: uuid.UUID, limit: int) -> list[Any]:
    return list(
        conn.execute(
            sa.select(
                tenant_users.c.id,
                tenant_users.c.email,
                tenant_users.c.full_name,
                tenant_users.c.role,
                tenant_users.c.status,
                tenant_users.c.last_login_at,
                tenant_users.c.created_at,
            )
            .where(tenant_users.c.tenant_id == tenant_id)
            .order_by(tenant_users.c.full_name, tenant_users.c.id)
            .limit(limit)
        )
    )


def tenant_agents_of(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    return list(
        conn.execute(
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
            .where(tenant_agents.c.tenant_id == tenant_id)
            .order_by(agents.c.display_name, agents.c.id)
        )
    )


def tenant_integrations_of(conn: Connection, tenant_id: uuid.UUID) -> list[Any]:
    ti = tenant_integrations
    return list(
        conn.execute(
            sa.select(*PUBLIC_COLUMNS)  # never credentials_encrypted
            .where(ti.c.tenant_id == tenant_id)
            .order_by(ti.c.integration_type, ti.c.integration_name, ti.c.id)
        )
    )


def tenant_usage_windows(conn: Connection, tenant_id: uuid.UUID, today: date) -> Any:
    """Requests of the last 7 and 30 days and the 30-day success/latency figures."""
    t = tenant_usage_totals
    since_7 = date.fromordinal(today.toordinal() - 6)
    since_30 = date.fromordinal(today.toordinal() - 29)
    return conn.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(t.c.total_requests).filter(t.c.date >= since_7), 0).label(
                "requests_7"
            ),
            sa.func.coalesce(sa.func.sum(t.c.total_requests), 0).label("requests_30"),
            sa.func.coalesce(sa.func.sum(t.c.successful_requests), 0).label("successful_30"),
            sa.func.coalesce(sa.func.sum(t.c.response_ms_weighted), 0).label("weighted_ms_30"),
        ).where(t.c.tenant_id == tenant_id, t.c.date >= since_30, t.c.date <= today)
    ).one()


def tenants_created_between(conn: Connection, start: datetime, end: datetime) -> int:
    """How many tenants were created in [start, end) (the staff landing's "new tenants")."""
    return int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(tenants)
            .where(tenants.c.created_at >= start, tenants.c.created_at < end)
        ).scalar_one()
    )
