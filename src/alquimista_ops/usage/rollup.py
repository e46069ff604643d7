"""The daily rollup: raw ``agent_requests`` of each UTC day into ``tenant_usage_daily``.

One day at a time, on the stored ``day`` column (no timestamp conversion):

1. the day's raw rows are grouped once per (tenant, agent) into a scratch temporary table
   (counts, sums, and the latest ``created_at``);
2. the (tenant, agent) pairs touched are the pairs of that scratch table plus the pairs that
   already had a rollup row for the day (so a pair whose requests disappeared loses its row);
3. the day's rollup rows are deleted and rewritten from the scratch table, with the
   request-weighted average response time and the cost from the agent's price computed exactly
   (integer sums, rounding half up);
4. ``tenant_agents.total_requests`` / ``total_errors`` of the touched pairs are recomputed from
   the whole rollup (never incremented) and ``last_used_at`` is the latest request seen.

Re-running a day therefore produces exactly the same rows. A day earlier than the oldest raw
day still stored (raw rows removed by retention, or history loaded as rollups only) is left
untouched: its raw data is gone, so its rollup is the only record of it.

Functions here never commit; ``rollup_range`` runs in the caller's transaction, and the job
runner (``usage.jobs``) opens one short transaction per day.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.schema import usage_period_snapshots
from alquimista_ops.core.types import UTCDateTime
from alquimista_ops.usage.totals import refresh_period_rankings, refresh_usage_totals

SCRATCH = "usage_rollup_scratch"
PAIRS = "usage_rollup_pairs"
# Transaction-level advisory lock key of every rollup on PostgreSQL (see _lock_rollups).
ROLLUP_LOCK_KEY = 0x0A15_0005


@dataclass(frozen=True)
class RollupResult:
    start: date
    end: date
    rows_read: int
    rows_written: int
    rows_deleted: int = 0
    days_rolled: int = 0
    days_skipped: int = 0
    tenant_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)

    def merge(self, other: RollupResult) -> RollupResult:
        return RollupResult(
            start=min(self.start, other.start),
            end=max(self.end, other.end),
            rows_read=self.rows_read + other.rows_read,
            rows_written=self.rows_written + other.rows_written,
            rows_deleted=self.rows_deleted + other.rows_deleted,
            days_rolled=self.days_rolled + other.days_rolled,
            days_skipped=self.days_skipped + other.days_skipped,
            tenant_ids=self.tenant_ids | other.tenant_ids,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "rows_deleted": self.rows_deleted,
            "days_rolled": self.days_rolled,
            "days_skipped": self.days_skipped,
            "tenants": len(self.tenant_ids),
        }


def days_between(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def oldest_raw_day(conn: Connection) -> date | None:
    """The oldest ``day`` still present in ``agent_requests`` (served by the day index)."""
    value = conn.execute(sa.text("SELECT MIN(day) FROM agent_requests")).scalar_one_or_none()
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _tenant_filter(alias: str, tenant_id: uuid.UUID | None) -> str:
    return f" AND {alias}.tenant_id = :tenant_id" if tenant_id is not None else ""


def _params(day: date, tenant_id: uuid.UUID | None) -> dict[str, Any]:
    params: dict[str, Any] = {"day": day}
    if tenant_id is not None:
        params["tenant_id"] = tenant_id
    return params


def _text(sql: str, tenant_id: uuid.UUID | None, **extra: Any) -> sa.TextClause:
    binds: list[sa.BindParameter[Any]] = [sa.bindparam("day", type_=sa.Date())]
    if tenant_id is not None:
        binds.append(sa.bindparam("tenant_id", type_=sa.Uuid()))
    for name, type_ in extra.items():
        binds.append(sa.bindparam(name, type_=type_))
    return sa.text(sql).bindparams(*binds)


def _drop_scratch(conn: Connection) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {SCRATCH}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {PAIRS}")


# Average response time, rounded half up to 2 decimals with integer arithmetic only:
# round(100 * sum / n) / 100.
_AVG = "CAST((s.sum_response_ms * 200 + s.requests) / (2 * s.requests) AS NUMERIC) / 100.0"
# Cost: tokens * price per 1k tokens / 1000, rounded to 6 decimals (numeric on PostgreSQL).
_COST = "ROUND(s.tokens * a.price_per_1k_tokens_usd / 1000, 6)"


def rollup_day(
    conn: Connection, day: date, *, tenant_id: uuid.UUID | None = None, rankings: bool = True
) -> RollupResult:
    """Rebuild the rollup rows of one UTC day (optionally of one tenant only); ``rankings``: as
    ``refresh_usage_totals``'s."""
    params = _params(day, tenant_id)
    _lock_rollups(conn)
    _drop_scratch(conn)
    conn.execute(
        _text(
            f"""
            CREATE TEMPORARY TABLE {SCRATCH} AS
            SELECT r.tenant_id, r.agent_id,
                   COUNT(*) AS requests,
                   SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END) AS failed,
                   SUM(r.response_time_ms) AS sum_response_ms,
                   SUM(r.tokens_used) AS tokens,
                   MAX(r.created_at) AS last_at
            FROM agent_requests r
            WHERE r.day = :day{_tenant_filter("r", tenant_id)}
            GROUP BY r.tenant_id, r.agent_id
            """,
            tenant_id,
        ),
        params,
    )
    conn.execute(
        _text(
            f"""
            CREATE TEMPORARY TABLE {PAIRS} AS
            SELECT tenant_id, agent_id FROM {SCRATCH}
            UNION
            SELECT d.tenant_id, d.agent_id FROM tenant_usage_daily d
            WHERE d.date = :day{_tenant_filter("d", tenant_id)}
            """,
            tenant_id,
        ),
        params,
    )
    rows_read = int(
        conn.exec_driver_sql(f"SELECT COALESCE(SUM(requests), 0) FROM {SCRATCH}").scalar_one()
    )
    where_tenant = _tenant_filter("tenant_usage_daily", tenant_id)
    deleted = conn.execute(
        _text(f"DELETE FROM tenant_usage_daily WHERE date = :day{where_tenant}", tenant_id),
        params,
    ).rowcount
    written = conn.execute(
        _text(
            f"""
            INSERT INTO tenant_usage_daily (
                tenant_id, agent_id, date, total_requests, successful_requests, failed_requests,
                avg_response_time_ms, total_tokens_used, total_cost_usd, updated_at
            )
            SELECT s.tenant_id, s.agent_id, :day, s.requests, s.requests - s.failed, s.failed,
                   {_AVG}, s.tokens, {_COST}, :now
            FROM {SCRATCH} s
            JOIN agents a ON a.id = s.agent_id
            """,
            None,
            now=UTCDateTime(),
        ),
        {"day": day, "now": utcnow()},
    ).rowcount
    _recompute_pairs(conn)
    tenant_ids = frozenset(
        _as_uuid(v)
        for v in conn.exec_driver_sql(f"SELECT DISTINCT tenant_id FROM {PAIRS}").scalars()
    )
    _drop_scratch(conn)
    # The daily/monthly totals tables (staff overviews) follow the rollup in the same
    # transaction, so no reader ever sees the two disagree.
    refresh_usage_totals(conn, day, day, rankings=rankings)
    return RollupResult(
        start=day,
        end=day,
        rows_read=rows_read,
        rows_written=int(written or 0),
        rows_deleted=int(deleted or 0),
        days_rolled=1,
        tenant_ids=tenant_ids,
    )


def _lock_rollups(conn: Connection) -> None:
    """Serialise rollups across processes (the scheduler, ``aggregate``, RECOMPUTE_USAGE).

    One transaction-level advisory lock for every rollup. Two rollups of the same day would
    otherwise collide on the day's rows, and two rollups of different days update the same
    ``tenant_agents`` rows in an unspecified order (a deadlock). Per-day transactions are short,
    so a waiting rollup waits little.
    """
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK_KEY})


_RANKINGS_OF_DAY = (
    sa.select(usage_period_snapshots.c.period_end)
    .where(usage_period_snapshots.c.period_end == sa.bindparam("today", type_=sa.Date()))
    .limit(1)
)


def ensure_period_rankings(engine: Engine, today: date) -> bool:
    """Store the period rankings of ``today`` when they are missing (after the migration that
    added them, or when no rollup ran the day before; ``usage.totals.refresh_period_rankings``),
    under the rollup lock. Returns whether it stored them. One cheap read when they are there."""
    with engine.connect() as conn:
        if conn.execute(_RANKINGS_OF_DAY, {"today": today}).first() is not None:
            return False
    with engine.begin() as conn:
        _lock_rollups(conn)
        if conn.execute(_RANKINGS_OF_DAY, {"today": today}).first() is not None:
            return False
        refresh_period_rankings(conn, today)
    return True


def _as_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes):
        return uuid.UUID(bytes=value)
    return uuid.UUID(str(value))


# Counters of the touched pairs, recomputed from the whole rollup (one grouped pass over the
# rollup rows of those pairs, joined once to tenant_agents). ``last_used_at`` keeps the latest
# request ever seen (the day's latest request, or the stored value when later).
_COUNTERS_FOR_PAIRS = f"""
UPDATE tenant_agents SET
    total_requests = c.total_requests,
    total_errors = c.total_errors,
    last_used_at = CASE
        WHEN c.last_at IS NOT NULL
             AND (tenant_agents.last_used_at IS NULL OR tenant_agents.last_used_at < c.last_at)
        THEN c.last_at ELSE tenant_agents.last_used_at END
FROM (
    SELECT p.tenant_id, p.agent_id,
           COALESCE(SUM(d.total_requests), 0) AS total_requests,
           COALESCE(SUM(d.failed_requests), 0) AS total_errors,
           MAX(s.last_at) AS last_at
    FROM {PAIRS} p
    LEFT JOIN tenant_usage_daily d ON d.tenant_id = p.tenant_id AND d.agent_id = p.agent_id
    LEFT JOIN {SCRATCH} s ON s.tenant_id = p.tenant_id AND s.agent_id = p.agent_id
    GROUP BY p.tenant_id, p.agent_id
) AS c
WHERE tenant_agents.tenant_id = c.tenant_id AND tenant_agents.agent_id = c.agent_id
  AND (tenant_agents.total_requests <> c.total_requests
       OR tenant_agents.total_errors <> c.total_errors
       OR (c.last_at IS NOT NULL
           AND (tenant_agents.last_used_at IS NULL OR tenant_agents.last_used_at < c.last_at)))
"""


def _recompute_pairs(conn: Connection) -> None:
    conn.exec_driver_sql(_COUNTERS_FOR_PAIRS)


def rollup_range(
    conn: Connection, start: date, end: date, *, tenant_id: uuid.UUID | None = None
) -> RollupResult:
    """Roll up every day of ``[start, end]`` in the caller's transaction.

    Days older than the oldest raw day still stored are skipped (their raw data is gone).
    """
    if end < start:
        raise ValueError("end is before start")
    oldest = oldest_raw_day(conn)
    total = RollupResult(start, end, 0, 0)
    for day in days_between(start, end):
        if oldest is None or day < oldest:
            total = total.merge(RollupResult(day, day, 0, 0, days_skipped=1))
            continue
        # one transaction: the stored period rankings once, after the last day
        total = total.merge(rollup_day(conn, day, tenant_id=tenant_id, rankings=False))
    if total.days_rolled:
        refresh_period_rankings(conn)
    return total


def recompute_agent_counters(conn: Connection) -> None:
    """Recompute the derived counters of every ``tenant_agents`` row from the rollup and the
    stored raw requests (used after a bulk load; the rollup itself touches only its pairs)."""
    conn.execute(
        sa.text(
            """
            UPDATE tenant_agents SET
                total_requests = COALESCE((SELECT SUM(d.total_requests) FROM tenant_usage_daily d
                                           WHERE d.tenant_id = tenant_agents.tenant_id
                                             AND d.agent_id = tenant_agents.agent_id), 0),
                total_errors = COALESCE((SELECT SUM(d.failed_requests) FROM tenant_usage_daily d
                                         WHERE d.tenant_id = tenant_agents.tenant_id
                                           AND d.agent_id = tenant_agents.agent_id), 0),
                last_used_at = COALESCE((SELECT MAX(r.created_at) FROM agent_requests r
                                         WHERE r.tenant_id = tenant_agents.tenant_id
                                           AND r.agent_id = tenant_agents.agent_id),
                                        last_used_at)
            """
        )
    )
