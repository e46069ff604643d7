"""Usage totals per tenant, per agent and for the platform, per day.

``refresh_usage_totals(conn, start, end)`` recomputes the three totals tables for the days
``start..end`` (inclusive) from ``tenant_usage_daily``. It is idempotent (the days are replaced,
never incremented). Call it in the same transaction, right after anything that rewrote
``tenant_usage_daily`` for those days: the daily rollup / backfill (issue 5), ``RECOMPUTE_USAGE``
and the demo seed. Then, after commit, invalidate the usage caches
(``runtime.cache.invalidate_usage(...)``).
"""

from __future__ import annotations

from datetime import date

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


def refresh_usage_totals(conn: Connection, start: date, end: date) -> None:
    """Recompute the per-tenant, per-agent and platform totals of ``start..end``."""
    params = {"start": start, "end": end}
    for sql in _STATEMENTS:
        conn.execute(
            sa.text(sql).bindparams(
                sa.bindparam("start", type_=sa.Date()), sa.bindparam("end", type_=sa.Date())
            ),
            params,
        )


# The name the issue-5 aggregation job was told to call.
refresh_tenant_totals = refresh_usage_totals
