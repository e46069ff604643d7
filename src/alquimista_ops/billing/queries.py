"""SQL for billing figures over ``tenants.mrr_estimate``.

A tenant is *paying at instant T* when it was created before T, had not churned by T
(``churned_at`` null or after T) and either is active today or has churned (so a tenant that
churned was paying until its ``churned_at``). Trial tenants have an MRR of 0; suspended tenants
(no churn date) are not paying. At the current instant this is exactly the set of active tenants.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import plans, tenants

PAYING = sa.or_(tenants.c.status == "active", tenants.c.churned_at.is_not(None))


def active_totals(conn: Connection) -> Any:
    return conn.execute(
        sa.select(
            sa.func.count().label("tenants"),
            sa.func.coalesce(sa.func.sum(tenants.c.mrr_estimate), 0).label("mrr"),
        ).where(tenants.c.status == "active")
    ).one()


def active_by_plan(conn: Connection) -> list[Any]:
    joined = plans.outerjoin(
        tenants, sa.and_(tenants.c.plan == plans.c.name, tenants.c.status == "active")
    )
    return list(
        conn.execute(
            sa.select(
                plans.c.name.label("plan"),
                plans.c.price_monthly_brl,
                sa.func.count(tenants.c.id).label("tenants"),
                sa.func.coalesce(sa.func.sum(tenants.c.mrr_estimate), 0).label("mrr"),
            )
            .select_from(joined)
            .group_by(plans.c.name, plans.c.price_monthly_brl)
            .order_by(plans.c.price_monthly_brl, plans.c.name)
        )
    )


def active_by_segment(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            sa.select(
                tenants.c.segment,
                sa.func.count().label("tenants"),
                sa.func.coalesce(sa.func.sum(tenants.c.mrr_estimate), 0).label("mrr"),
            )
            .where(tenants.c.status == "active")
            .group_by(tenants.c.segment)
        )
    )


def paying_mrr_at(conn: Connection, instant: datetime) -> Any:
    return conn.execute(
        sa.select(
            sa.func.count().label("tenants"),
            sa.func.coalesce(sa.func.sum(tenants.c.mrr_estimate), 0).label("mrr"),
        ).where(
            PAYING,
            tenants.c.created_at < instant,
            sa.or_(tenants.c.churned_at.is_(None), tenants.c.churned_at >= instant),
        )
    ).one()


def movements(conn: Connection, start: datetime, end: datetime) -> list[Any]:
    """Paying tenants created or churned in [start, end): the MRR movements of the period."""
    return list(
        conn.execute(
            sa.select(
                tenants.c.id, tenants.c.mrr_estimate, tenants.c.created_at, tenants.c.churned_at
            ).where(
                PAYING,
                sa.or_(
                    sa.and_(tenants.c.created_at >= start, tenants.c.created_at < end),
                    sa.and_(tenants.c.churned_at >= start, tenants.c.churned_at < end),
                ),
            )
        )
    )
