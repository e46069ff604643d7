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
    """One row per (plan, segment) with tenants, every plan at least once (a plan without
    tenants: one row with a null segment), ordered by the plan's price and name. Each row
    carries its active tenants and their MRR, and ``base_mrr``: the MRR of its tenants paying at
    ``:start`` (summed over the rows, the MRR at the start of the period). One pass over
    ``tenants``."""
    instant = sa.bindparam("start", type_=tenants.c.created_at.type)
    active = tenants.c.status == "active"
    paying_at_start = sa.and_(
        PAYING,
        tenants.c.created_at < instant,
        sa.or_(tenants.c.churned_at.is_(None), tenants.c.churned_at >= instant),
    )
    grouped = (
        sa.select(
            tenants.c.plan,
            tenants.c.segment,
            sa.func.count().filter(active).label("tenants"),
            sa.func.sum(tenants.c.mrr_estimate).filter(active).label("mrr"),
            sa.func.sum(tenants.c.mrr_estimate).filter(paying_at_start).label("base_mrr"),
        )
        .group_by(tenants.c.plan, tenants.c.segment)
        .subquery("grouped")
    )
    return (
        sa.select(
            plans.c.name.label("plan"),
            grouped.c.segment,
            sa.func.coalesce(grouped.c.tenants, 0).label("tenants"),
            sa.func.coalesce(grouped.c.mrr, 0).label("mrr"),
            sa.func.coalesce(grouped.c.base_mrr, 0).label("base_mrr"),
        )
        .select_from(plans.outerjoin(grouped, grouped.c.plan == plans.c.name))
        .order_by(plans.c.price_monthly_brl, plans.c.name)
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
