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

from alquimista_ops.billing import queries
from alquimista_ops.core.numbers import money
from alquimista_ops.core.params import Period
from alquimista_ops.core.reads import Reads
from alquimista_ops.core.schema import SEGMENTS


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _from_cents(cents: Any) -> Decimal:
    return Decimal(int(cents)).scaleb(-2)


def _share(part_cents: int, whole_cents: int) -> float:
    """``part`` in percent of ``whole``, from the floats of the two amounts."""
    if not whole_cents:
        return 0.0
    return round((part_cents / 100) * 100.0 / (whole_cents / 100), 2)


def _bounds(period: Period) -> tuple[datetime, datetime]:
    return _midnight(period.start), _midnight(period.end + timedelta(days=1))


async def billing_overview(reads: Reads, period: Period) -> dict[str, Any]:
    """The overview of ``period``. Sums are kept in integer cents, as the queries give them
    (``cents / 100`` is the float of the two-decimal amount: what ``money`` gives for it, with
    no ``Decimal`` arithmetic per day of the trend)."""
    start, end = _bounds(period)
    rows, movements = await reads.gather(
        reads.all(queries.ACTIVE_BY_PLAN_AND_SEGMENT, start=start),
        reads.all(queries.MOVEMENTS_BY_DAY, start=start, end=end),
    )
    base_cents = int(rows[0].base_cents) if rows else 0
    # plan -> [tenants, cents] in the plans' order; segment -> [tenants, cents]
    plan_totals: dict[str, list[int]] = {}
    segment_totals: dict[str, list[int]] = {}
    for row in rows:
        cents = int(row.mrr_cents)
        plan = plan_totals.setdefault(row.plan, [0, 0])
        plan[0] += int(row.tenants)
        plan[1] += cents
        if row.segment is not None and row.tenants:
            segment = segment_totals.setdefault(row.segment, [0, 0])
            segment[0] += int(row.tenants)
            segment[1] += cents
    active_tenants = sum(count for count, _cents in plan_totals.values())
    total_cents = sum(cents for _count, cents in plan_totals.values())

    moves = {row.day: row for row in movements}
    new_cents = churned_cents = 0
    new_count = churn_count = 0
    running = base_cents
    running_money = running / 100
    trend = []
    for day in period.dates():
        row = moves.get(day)
        if row is None:  # most days: no movement
            trend.append({"date": day, "mrr": running_money, "new_mrr": 0.0, "churned_mrr": 0.0})
            continue
        new, churned = int(row.new_cents), int(row.churned_cents)
        new_cents += new
        churned_cents += churned
        new_count += int(row.new_tenants)
        churn_count += int(row.churned_tenants)
        running += new - churned
        running_money = running / 100
        trend.append(
            {"date": day, "mrr": running_money, "new_mrr": new / 100, "churned_mrr": churned / 100}
        )
    total_mrr = total_cents / 100
    return {
        "period": period.as_dict(),
        "currency": "BRL",
        "total_mrr": total_mrr,
        "arr": total_cents * 12 / 100,
        "active_tenants": active_tenants,
        "avg_mrr_per_tenant": money(_from_cents(total_cents) / active_tenants)
        if active_tenants
        else 0.0,
        "mrr_at_period_start": base_cents / 100,
        "new_mrr_this_period": new_cents / 100,
        "new_tenants_this_period": new_count,
        "churned_mrr_this_period": churned_cents / 100,
        "churned_tenants_this_period": churn_count,
        "net_new_mrr_this_period": (new_cents - churned_cents) / 100,
        "by_plan": [
            {
                "plan": plan,
                "tenants": count,
                "mrr": cents / 100,
                "share": _share(cents, total_cents),
            }
            for plan, (count, cents) in plan_totals.items()
        ],
        "by_segment": [
            {
                "segment": segment,
                "tenants": segment_totals[segment][0] if segment in segment_totals else 0,
                "mrr": segment_totals[segment][1] / 100 if segment in segment_totals else 0.0,
                "share": _share(segment_totals[segment][1], total_cents)
                if segment in segment_totals
                else 0.0,
            }
            for segment in SEGMENTS
        ],
        "revenue_trend": trend,
    }
