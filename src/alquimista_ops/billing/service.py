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
    base_mrr = Decimal(0)
    # plan -> [tenants, mrr] in the plans' order; segment -> [tenants, mrr]
    plan_totals: dict[str, list[Any]] = {}
    segment_totals: dict[str, list[Any]] = {}
    for row in queries.active_by_plan_and_segment(conn, start):
        base_mrr += Decimal(row.base_mrr)
        plan = plan_totals.setdefault(row.plan, [0, Decimal(0)])
        plan[0] += int(row.tenants)
        plan[1] += Decimal(row.mrr)
        if row.segment is not None and row.tenants:
            segment = segment_totals.setdefault(row.segment, [0, Decimal(0)])
            segment[0] += int(row.tenants)
            segment[1] += Decimal(row.mrr)
    active_tenants = sum(count for count, _mrr in plan_totals.values())
    total_mrr = sum((mrr for _count, mrr in plan_totals.values()), Decimal(0))

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

    running = base_mrr
    running_money = money(running)
    trend = []
    for day in period.dates():
        new = new_by_day.get(day)
        churned = churn_by_day.get(day)
        if new is None and churned is None:  # most days: no movement, nothing to convert
            trend.append({"date": day, "mrr": running_money, "new_mrr": 0.0, "churned_mrr": 0.0})
            continue
        running += (new or Decimal(0)) - (churned or Decimal(0))
        running_money = money(running)
        trend.append(
            {
                "date": day,
                "mrr": running_money,
                "new_mrr": money(new) if new is not None else 0.0,
                "churned_mrr": money(churned) if churned is not None else 0.0,
            }
        )
    new_mrr = sum(new_by_day.values(), Decimal(0))
    churned_mrr = sum(churn_by_day.values(), Decimal(0))
    return {
        "period": period.as_dict(),
        "currency": "BRL",
        "total_mrr": money(total_mrr),
        "arr": money(total_mrr * 12),
        "active_tenants": active_tenants,
        "avg_mrr_per_tenant": money(total_mrr / active_tenants) if active_tenants else 0.0,
        "mrr_at_period_start": money(base_mrr),
        "new_mrr_this_period": money(new_mrr),
        "new_tenants_this_period": new_count,
        "churned_mrr_this_period": money(churned_mrr),
        "churned_tenants_this_period": churn_count,
        "net_new_mrr_this_period": money(new_mrr - churned_mrr),
        "by_plan": [
            {"plan": plan, "tenants": count, "mrr": money(mrr), "share": _share(mrr, total_mrr)}
            for plan, (count, mrr) in plan_totals.items()
        ],
        "by_segment": [
            {
                "segment": segment,
                "tenants": segment_totals[segment][0] if segment in segment_totals else 0,
                "mrr": money(segment_totals[segment][1]) if segment in segment_totals else 0.0,
                "share": _share(segment_totals[segment][1], total_mrr)
                if segment in segment_totals
                else 0.0,
            }
            for segment in SEGMENTS
        ],
        "revenue_trend": trend,
    }
