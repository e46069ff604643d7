"""SQL for billing figures over ``tenants.mrr_estimate``.

A tenant is *paying at instant T* when it was created before T, had not churned by T
(``churned_at`` null or after T) and either is active today or has churned (so a tenant that
churned was paying until its ``churned_at``). Trial tenants have an MRR of 0; suspended tenants
(no churn date) are not paying. At the current instant this is exactly the set of active tenants.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import plans, tenants

PAYING = sa.or_(tenants.c.status == "active", tenants.c.churned_at.is_not(None))


def _active_by_plan_and_segment() -> sa.Select[Any]:
    """One row per (plan, segment) of the active tenants, every plan at least once (a plan
    without active tenants: one row with a null segment and 0 tenants), ordered by the plan's
    price and name; each row also carries ``base_mrr``, the MRR of the tenants paying at
    ``:start`` (one more scan of ``tenants``, run once)."""
    instant = sa.bindparam("start", type_=tenants.c.created_at.type)
    base = (
        sa.select(sa.func.coalesce(sa.func.sum(tenants.c.mrr_estimate), 0).label("base_mrr"))
        .where(
            PAYING,
            tenants.c.created_at < instant,
            sa.or_(tenants.c.churned_at.is_(None), tenants.c.churned_at >= instant),
        )
        .subquery("base")
    )
    joined = plans.outerjoin(
        tenants, sa.and_(tenants.c.plan == plans.c.name, tenants.c.status == "active")
    )
    grouped = (
        sa.select(
            plans.c.name.label("plan"),
            plans.c.price_monthly_brl,
            tenants.c.segment,
            sa.func.count(tenants.c.id).label("tenants"),
            sa.func.coalesce(sa.func.sum(tenants.c.mrr_estimate), 0).label("mrr"),
        )
        .select_from(joined)
        .group_by(plans.c.name, plans.c.price_monthly_brl, tenants.c.segment)
        .subquery("grouped")
    )
    # base LEFT JOIN: the base row comes back even without any plan
    return (
        sa.select(base.c.base_mrr, grouped.c.plan, grouped.c.segment, grouped.c.tenants)
        .add_columns(grouped.c.mrr)
        .select_from(base.outerjoin(grouped, sa.true()))
        .order_by(grouped.c.price_monthly_brl, grouped.c.plan)
    )


ACTIVE_BY_PLAN_AND_SEGMENT = _active_by_plan_and_segment()


def active_by_plan_and_segment(conn: Connection, start: datetime) -> Sequence[Any]:
    return conn.execute(ACTIVE_BY_PLAN_AND_SEGMENT, {"start": start}).all()


MOVEMENTS = sa.select(
    tenants.c.id, tenants.c.mrr_estimate, tenants.c.created_at, tenants.c.churned_at
).where(
    PAYING,
    sa.or_(
        sa.and_(
            tenants.c.created_at >= sa.bindparam("start"),
            tenants.c.created_at < sa.bindparam("end"),
        ),
        sa.and_(
            tenants.c.churned_at >= sa.bindparam("start"),
            tenants.c.churned_at < sa.bindparam("end"),
        ),
    ),
)


def movements(conn: Connection, start: datetime, end: datetime) -> Sequence[Any]:
    """Paying tenants created or churned in [start, end): the MRR movements of the period."""
    return conn.execute(MOVEMENTS, {"start": start, "end": end}).all()
