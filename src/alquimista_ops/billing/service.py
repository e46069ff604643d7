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

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.billing import queries
from alquimista_ops.core.fastread import Call, prefetch
from alquimista_ops.core.numbers import money
from alquimista_ops.core.params import Period
from alquimista_ops.core.schema import SEGMENTS


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _from_cents(cents: Any) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def _share(part: Decimal, whole: Decimal) -> float:
    return round(float(part) * 100.0 / float(whole), 2) if whole else 0.0


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return _midnight(period.start), _midnight(period.end + timedelta(days=1))


def billing_overview_calls(period: Period) -> list[Call]:
    """The statements ``billing_overview`` runs, for ``core.fastread.prefetch``."""
    start, end = _bounds(period)
    return [
        queries.active_by_plan_and_segment_call(start),
        queries.movements_by_day_call(start, end),
    ]


def billing_overview(conn: Connection, period: Period) -> dict[str, Any]:
    prefetch(conn, billing_overview_calls(period))
    start, end = _bounds(period)
    rows = queries.active_by_plan_and_segment(conn, start)
    base_mrr = _from_cents(rows[0].base_cents) if rows else Decimal(0)
    # plan -> [tenants, mrr] in the plans' order; segment -> [tenants, mrr]
    plan_totals: dict[str, list[Any]] = {}
    segment_totals: dict[str, list[Any]] = {}
    for row in rows:
        mrr = _from_cents(row.mrr_cents)
        plan = plan_totals.setdefault(row.plan, [0, Decimal(0)])
        plan[0] += int(row.tenants)
        plan[1] += mrr
        if row.segment is not None and row.tenants:
            segment = segment_totals.setdefault(row.segment, [0, Decimal(0)])
            segment[0] += int(row.tenants)
            segment[1] += mrr
    active_tenants = sum(count for count, _mrr in plan_totals.values())
    total_mrr = sum((mrr for _count, mrr in plan_totals.values()), Decimal(0))

    moves = {row.day: row for row in queries.movements_by_day(conn, start, end)}
    new_mrr = churned_mrr = Decimal(0)
    new_count = churn_count = 0
    running = base_mrr
    running_money = money(running)
    trend = []
    for day in period.dates():
        row = moves.get(day)
        if row is None:  # most days: no movement, nothing to convert
            trend.append({"date": day, "mrr": running_money, "new_mrr": 0.0, "churned_mrr": 0.0})
            continue
        new, churned = Decimal(row.new_mrr), Decimal(row.churned_mrr)
        new_mrr += new
        churned_mrr += churned
        new_count += int(row.new_tenants)
        churn_count += int(row.churned_tenants)
        running += new - churned
        running_money = money(running)
        trend.append(
            {
                "date": day,
                "mrr": running_money,
                "new_mrr": money(new),
                "churned_mrr": money(churned),
            }
        )
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
