"""Usage totals per tenant, per agent and for the platform, per day.

``refresh_usage_totals(conn, start, end)`` recomputes the three totals tables for the days
``start..end`` (inclusive) from ``tenant_usage_daily``. It is idempotent (the days are replaced,
never incremented). Call it in the same transaction, right after anything that rewrote
``tenant_usage_daily`` for those days: the daily rollup / backfill, ``RECOMPUTE_USAGE``
and the demo seed. Then, after commit, invalidate the usage caches
(``runtime.cache.invalidate_usage(...)``).
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

_MEASURES = """
    SUM(total_requests), SUM(successful_requests), SUM(failed_requests),
    SUM(avg_response_time_ms * total_requests), SUM(total_tokens_used), SUM(total_cost_usd)
"""
_COLUMNS = (
    "total_requests, successful_requests, failed_requests, response_ms_weighted,"
    " total_tokens_used, total_cost_usd"
)
_RANGE = "date BETWEEN :start AND :end"

_STATEMENTS = (
    f"DELETE FROM tenant_usage_totals WHERE {_RANGE}",
    f"DELETE FROM agent_usage_totals WHERE {_RANGE}",
    f"DELETE FROM platform_usage_totals WHERE {_RANGE}",
    f"INSERT INTO tenant_usage_totals (tenant_id, date, {_COLUMNS})"
    f" SELECT tenant_id, date, {_MEASURES} FROM tenant_usage_daily WHERE {_RANGE}"
    " GROUP BY tenant_id, date",
    f"INSERT INTO agent_usage_totals (agent_id, date, {_COLUMNS}, tenants_with_usage)"
    f" SELECT agent_id, date, {_MEASURES}, COUNT(DISTINCT tenant_id) FROM tenant_usage_daily"
    f" WHERE {_RANGE} GROUP BY agent_id, date",
    f"INSERT INTO platform_usage_totals (date, {_COLUMNS}, tenants_with_usage)"
    f" SELECT date, {_MEASURES}, COUNT(DISTINCT tenant_id) FROM tenant_usage_daily"
    f" WHERE {_RANGE} GROUP BY date",
)


def _dated(sql: str) -> sa.TextClause:
    names = [name for name in ("start", "end") if f":{name}" in sql]
    return sa.text(sql).bindparams(*(sa.bindparam(name, type_=sa.Date()) for name in names))


def refresh_usage_totals(conn: Connection, start: date, end: date) -> None:
    """Recompute the per-tenant, per-agent, platform and monthly totals of ``start..end``."""
    params = {"start": start, "end": end}
    for sql in _STATEMENTS:
        conn.execute(_dated(sql), params)
    refresh_monthly(conn, start, end)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def refresh_monthly(conn: Connection, start: date, end: date) -> None:
    """Recompute ``tenant_usage_monthly`` for every month touched by ``start..end``."""
    month = month_start(start)
    while month <= end:
        following = next_month(month)
        params = {"start": month, "end": following - timedelta(days=1)}
        conn.execute(
            _dated("DELETE FROM tenant_usage_monthly WHERE month = :start"), {"start": month}
        )
        conn.execute(
            _dated(
                "INSERT INTO tenant_usage_monthly (tenant_id, month, total_requests)"
                " SELECT tenant_id, :start, SUM(total_requests) FROM tenant_usage_totals"
                " WHERE date BETWEEN :start AND :end GROUP BY tenant_id"
            ),
            params,
        )
        month = following


# The name the aggregation job calls.
refresh_tenant_totals = refresh_usage_totals
