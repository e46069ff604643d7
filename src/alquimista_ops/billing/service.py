"""Billing overview (INTERNAL_ADMIN): MRR, ARR, movements of the period, MRR by plan and by
segment, and the running MRR at the end of each day of the period.

Definitions (see ``billing.queries`` for "paying"):
- ``total_mrr``: sum of ``mrr_estimate`` of active tenants; ``arr`` = 12 x ``total_mrr``.
- ``new_mrr_this_period``: MRR of paying tenants created during the period.
- ``churned_mrr_this_period``: MRR of tenants whose ``churned_at`` falls in the period.
- ``revenue_trend[d].mrr``: MRR of the tenants paying at the end of day d (UTC), so that
  trend[last] = trend[before the period] + new - churned, and at today's end = ``total_mrr``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.billing import queries
from alquimista_ops.core.numbers import money
from alquimista_ops.core.params import Period
from alquimista_ops.core.schema import SEGMENTS


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _share(part: Decimal, whole: Decimal) -> float:
    return round(float(part) * 100.0 / float(whole), 2) if whole else 0.0


def billing_overview(conn: Connection, period: Period) -> dict[str, Any]:
    start = _midnight(period.start)
    end = _midnight(period.end + timedelta(days=1))
    active = queries.active_totals(conn)
    total_mrr = Decimal(active.mrr)
    base = queries.paying_mrr_at(conn, start)

    new_by_day: dict[date, Decimal] = defaultdict(Decimal)
    churn_by_day: dict[date, Decimal] = defaultdict(Decimal)
    new_count = churn_count = 0
    for row in queries.movements(conn, start, end):
        mrr = Decimal(row.mrr_estimate)
        if start <= row.created_at < end:
            new_by_day[row.created_at.astimezone(UTC).date()] += mrr
            new_count += 1
        if row.churned_at is not None and start <= row.churned_at < end:
            churn_by_day[row.churned_at.astimezone(UTC).date()] += mrr
            churn_count += 1

    running = Decimal(base.mrr)
    trend = []
    for day in period.dates():
        running += new_by_day.get(day, Decimal(0)) - churn_by_day.get(day, Decimal(0))
        trend.append(
            {
                "date": day,
                "mrr": money(running),
                "new_mrr": money(new_by_day.get(day, 0)),
                "churned_mrr": money(churn_by_day.get(day, 0)),
            }
        )
    new_mrr = sum(new_by_day.values(), Decimal(0))
    churned_mrr = sum(churn_by_day.values(), Decimal(0))
    by_segment = {row.segment: row for row in queries.active_by_segment(conn)}
    return {
        "period": period.as_dict(),
        "currency": "BRL",
        "total_mrr": money(total_mrr),
        "arr": money(total_mrr * 12),
        "active_tenants": int(active.tenants),
        "avg_mrr_per_tenant": money(total_mrr / active.tenants) if active.tenants else 0.0,
        "mrr_at_period_start": money(base.mrr),
        "new_mrr_this_period": money(new_mrr),
        "new_tenants_this_period": new_count,
        "churned_mrr_this_period": money(churned_mrr),
        "churned_tenants_this_period": churn_count,
        "net_new_mrr_this_period": money(new_mrr - churned_mrr),
        "by_plan": [
            {
                "plan": row.plan,
                "tenants": int(row.tenants),
                "mrr": money(row.mrr),
                "share": _share(Decimal(row.mrr), total_mrr),
            }
            for row in queries.active_by_plan(conn)
        ],
        "by_segment": [
            {
                "segment": segment,
                "tenants": int(by_segment[segment].tenants) if segment in by_segment else 0,
                "mrr": money(by_segment[segment].mrr) if segment in by_segment else 0.0,
                "share": _share(Decimal(by_segment[segment].mrr), total_mrr)
                if segment in by_segment
                else 0.0,
            }
            for segment in SEGMENTS
        ],
        "revenue_trend": trend,
    }
