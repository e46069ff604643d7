"""Usage totals per tenant, per agent and for the platform, per day.

``refresh_usage_totals(conn, start, end)`` recomputes the three totals tables for the days
``start..end`` (inclusive) from ``tenant_usage_daily``, the per-tenant running totals
that depend on them and the staff overview's stored period rankings
(``refresh_period_rankings``). It is idempotent (the days are replaced,
never incremented). Call it in the same transaction, right after anything that rewrote
``tenant_usage_daily`` for those days: the daily rollup / backfill, ``RECOMPUTE_USAGE``
and the demo seed. Then, after commit, invalidate the usage caches
(``runtime.cache.invalidate_usage(...)``).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.params import PERIOD_DAYS
from alquimista_ops.core.schema import usage_period_rankings, usage_period_snapshots
from alquimista_ops.usage import overview_queries

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
    names = [
        name
        for name in ("start", "end", "hi", "before", "ext", "h_old", "first", "last")
        if f":{name}" in sql
    ]
    return sa.text(sql).bindparams(*(sa.bindparam(name, type_=sa.Date()) for name in names))


def refresh_usage_totals(
    conn: Connection, start: date, end: date, *, rankings: bool = True
) -> None:
    """Recompute the per-tenant, per-agent and platform totals of ``start..end``, bring the
    per-tenant running totals (``tenant_usage_cumulative``) in line with them and, unless
    ``rankings`` is False (a caller refreshing several ranges in one transaction, which then
    calls ``refresh_period_rankings`` once), the stored period rankings."""
    params = {"start": start, "end": end}
    for sql in _STATEMENTS:
        conn.execute(_dated(sql), params)
    refresh_cumulative(conn, start, end)
    if rankings:
        refresh_period_rankings(conn)


# -- stored period rankings -----------------------------------------------------------------
def _stored_measures(row: Any) -> dict[str, Any]:
    """A ranking query's measures (``overview_queries``) as the columns of the rankings table.
    The weighted response time and the cost come as doubles (cast from NUMERIC sums of 2 and 6
    decimals); ``repr`` writes out the decimal they came from whenever it has at most 15
    significant digits (sums under 10^13 ms, 10^9 USD), so they are read back as the same
    doubles; beyond that the last bits may differ, below the 2 decimals the overview shows."""
    return {
        "total_requests": int(row.total_requests),
        "successful_requests": int(row.successful_requests),
        "failed_requests": int(row.failed_requests),
        "response_ms_weighted": Decimal(repr(float(row.weighted_response_ms))),
        "total_tokens_used": int(row.total_tokens),
        "total_cost_usd": Decimal(repr(float(row.total_cost_usd))),
    }


def refresh_period_rankings(conn: Connection, today: date | None = None) -> None:
    """Recompute the stored rankings (``usage_period_snapshots`` / ``usage_period_rankings``)
    of the standard periods ending ``today`` (default: today, UTC) and the day after, from the
    totals as this transaction sees them, and drop every other period's. The day after is there
    so that the periods of tomorrow are stored before tomorrow's rollup runs (until it does,
    the totals they rank are the same). Callers serialise it (the rollup lock, or the seed)."""
    today = today or utctoday()
    conn.execute(usage_period_rankings.delete())
    conn.execute(usage_period_snapshots.delete())
    snapshots: list[dict[str, Any]] = []
    ranked: list[dict[str, Any]] = []
    top = overview_queries.TOP
    for end in (today, today + timedelta(days=1)):
        for days in sorted(set(PERIOD_DAYS.values())):
            start = end - timedelta(days=days - 1)
            key = {"period_start": start, "period_end": end}
            tenants, with_usage = overview_queries.top_tenants(conn, start, end, top)
            agents, _deployed = overview_queries.top_agents(conn, start, end, top)
            snapshots.append({**key, "tenants_with_usage": with_usage})
            for kind, rows in (("tenant", tenants), ("agent", agents)):
                for position, row in enumerate(rows, 1):
                    ranked.append(
                        {
                            **key,
                            "kind": kind,
                            "position": position,
                            "tenant_id": row.tenant_id if kind == "tenant" else None,
                            "agent_id": row.agent_id if kind == "agent" else None,
                            **_stored_measures(row),
                        }
                    )
    conn.execute(usage_period_snapshots.insert(), snapshots)
    if ranked:
        conn.execute(usage_period_rankings.insert(), ranked)


# -- running totals -------------------------------------------------------------------------
_CUMULATIVE = "tenant_usage_cumulative"
_FROM = "usage_cumulative_from"  # scratch: (tenant_id, from_date) of the rows to rewrite
_NAMES = (
    "total_requests",
    "successful_requests",
    "failed_requests",
    "response_ms_weighted",
    "total_tokens_used",
    "total_cost_usd",
)


# ``days(date)``: every day from ``:first`` to ``:last`` (inclusive).
_DAYS_CTE = (
    "days(date) AS (SELECT CAST(g AS DATE) FROM generate_series("
    "CAST(:first AS DATE), CAST(:last AS DATE), INTERVAL '1 day') AS g)"
)


def _max_date(conn: Connection, table: str) -> date | None:
    value = conn.execute(sa.text(f"SELECT MAX(date) FROM {table}")).scalar()
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def refresh_cumulative(conn: Connection, start: date, end: date) -> None:
    """Make ``tenant_usage_cumulative`` agree with ``tenant_usage_totals`` after the days
    ``start..end`` of the latter were rewritten.

    Only what changed is rewritten: per tenant, the rows from the first day of ``start..end``
    whose daily figures differ from what the running totals imply (row of D minus row of D - 1),
    through the last day with totals; and the days after the previous last day (every tenant
    carries its running totals forward, so the rows stay dense). A rerun that changes nothing
    writes nothing but the new days.
    """
    h_old = _max_date(conn, _CUMULATIVE)
    h_new = _max_date(conn, "tenant_usage_totals")
    if h_new is None:
        conn.execute(sa.text(f"DELETE FROM {_CUMULATIVE}"))
        return
    if h_old is not None and h_old > h_new:
        conn.execute(_dated(f"DELETE FROM {_CUMULATIVE} WHERE date > :end"), {"end": h_new})
    parts: list[str] = []
    params: dict[str, Any] = {}
    if h_old is None:
        parts.append(
            "SELECT tenant_id, MIN(date) AS from_date FROM tenant_usage_totals GROUP BY tenant_id"
        )
    else:
        hi = min(end, h_old)
        if start <= hi:
            # Days of start..hi whose figures differ from the running totals' daily steps.
            steps = ", ".join(f"{n} - COALESCE(LAG({n}) OVER w, 0) AS {n}" for n in _NAMES)
            negated = ", ".join(f"-{n}" for n in _NAMES)
            differs = " OR ".join(f"SUM({n}) <> 0" for n in _NAMES)
            parts.append(
                "SELECT tenant_id, date AS from_date FROM ("
                f" SELECT tenant_id, date, {', '.join(_NAMES)} FROM tenant_usage_totals"
                "  WHERE date >= :start AND date <= :hi"
                f" UNION ALL SELECT tenant_id, date, {negated} FROM ("
                f"  SELECT tenant_id, date, {steps} FROM {_CUMULATIVE}"
                "   WHERE date >= :before AND date <= :hi"
                "   WINDOW w AS (PARTITION BY tenant_id ORDER BY date)"
                "  ) AS steps WHERE date >= :start"
                f") AS diff GROUP BY tenant_id, date HAVING {differs}"
            )
            params.update(start=start, hi=hi, before=start - timedelta(days=1))
        if h_new > h_old:
            # New days: every tenant's running totals carry forward.
            parts.append(
                f"SELECT tenant_id, :ext AS from_date FROM {_CUMULATIVE} WHERE date = :h_old"
            )
            parts.append(
                "SELECT tenant_id, :ext AS from_date FROM tenant_usage_totals WHERE date > :h_old"
            )
            params.update(ext=h_old + timedelta(days=1), h_old=h_old)
    if not parts:
        return
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_FROM}")
    base = ", ".join(f"b.{n} AS base_{n}" for n in _NAMES)
    conn.execute(
        _dated(
            f"CREATE TEMPORARY TABLE {_FROM} AS SELECT g.tenant_id, g.from_date, {base}"
            " FROM (SELECT tenant_id, MIN(from_date) AS from_date"
            f"       FROM ({' UNION ALL '.join(parts)}) AS f GROUP BY tenant_id) AS g"
            f" LEFT JOIN {_CUMULATIVE} b ON b.tenant_id = g.tenant_id"
            f"  AND b.date = {_day_before('g.from_date')}"
        ),
        params,
    )
    first = conn.execute(sa.text(f"SELECT MIN(from_date) FROM {_FROM}")).scalar()
    if first is not None:
        conn.execute(
            sa.text(
                f"DELETE FROM {_CUMULATIVE} WHERE (tenant_id, date) IN ("
                f" SELECT c.tenant_id, c.date FROM {_CUMULATIVE} c"
                f" JOIN {_FROM} f ON f.tenant_id = c.tenant_id AND c.date >= f.from_date)"
            )
        )
        running = ", ".join(
            f"COALESCE(f.base_{n}, 0) + SUM(COALESCE(t.{n}, 0)) OVER w" for n in _NAMES
        )
        conn.execute(
            _dated(
                f"WITH RECURSIVE {_DAYS_CTE}"
                f" INSERT INTO {_CUMULATIVE} (tenant_id, date, {', '.join(_NAMES)})"
                f" SELECT f.tenant_id, d.date, {running}"
                f" FROM {_FROM} f JOIN days d ON d.date >= f.from_date"
                " LEFT JOIN tenant_usage_totals t ON t.tenant_id = f.tenant_id AND t.date = d.date"
                " WINDOW w AS (PARTITION BY f.tenant_id ORDER BY d.date)"
            ),
            {"first": _as_date(first), "last": h_new},
        )
    conn.exec_driver_sql(f"DROP TABLE {_FROM}")


def _day_before(column: str) -> str:
    return f"CAST({column} AS DATE) - 1"


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# The name the aggregation job calls.
refresh_tenant_totals = refresh_usage_totals
