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
from alquimista_ops.core.types import utc_date

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


def _movements_by_day() -> sa.Select[Any]:
    """Per UTC day of [``:start``, ``:end``) with a movement, in day order: the MRR and number
    of the paying tenants created that day (``new_mrr``, ``new_tenants``) and of those that
    churned that day (``churned_mrr``, ``churned_tenants``)."""
    instant = tenants.c.created_at.type
    start = sa.bindparam("start", type_=instant)
    end = sa.bindparam("end", type_=instant)
    mrr = tenants.c.mrr_estimate
    zero = sa.cast(sa.literal_column("0"), sa.Numeric(12, 2))  # constants, not bound values

    def moved(at: sa.ColumnElement[Any], created: bool) -> sa.Select[Any]:
        return sa.select(
            utc_date(at).label("day"),
            (mrr if created else zero).label("new_mrr"),
            (zero if created else mrr).label("churned_mrr"),
            sa.literal_column("1" if created else "0", sa.Integer()).label("new"),
        ).where(PAYING, at >= start, at < end)

    moves = sa.union_all(
        moved(tenants.c.created_at, created=True), moved(tenants.c.churned_at, created=False)
    ).subquery("moves")
    return (
        sa.select(
            moves.c.day,
            sa.func.sum(moves.c.new_mrr).label("new_mrr"),
            sa.func.sum(moves.c.new).label("new_tenants"),
            sa.func.sum(moves.c.churned_mrr).label("churned_mrr"),
            sa.func.sum(1 - moves.c.new).label("churned_tenants"),
        )
        .group_by(moves.c.day)
        .order_by(moves.c.day)
    )


MOVEMENTS_BY_DAY = _movements_by_day()


def movements_by_day(conn: Connection, start: datetime, end: datetime) -> Sequence[Any]:
    """The MRR movements of [start, end) per UTC day: paying tenants created or churned."""
    return conn.execute(MOVEMENTS_BY_DAY, {"start": start, "end": end}).all()
