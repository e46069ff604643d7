"""The daily rollup: raw ``agent_requests`` of each UTC day into ``tenant_usage_daily``.

Re-running a day replaces its rows (no double counting), and the derived counters of
``tenant_agents`` are recomputed from the rollup, never incremented.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.types import UTCDateTime


@dataclass(frozen=True)
class RollupResult:
    start: date
    end: date
    rows_read: int
    rows_written: int


_INSERT = """
INSERT INTO tenant_usage_daily (
    tenant_id, agent_id, date, total_requests, successful_requests, failed_requests,
    avg_response_time_ms, total_tokens_used, total_cost_usd, updated_at
)
SELECT r.tenant_id, r.agent_id, r.day,
       COUNT(*),
       SUM(CASE WHEN r.status = 'success' THEN 1 ELSE 0 END),
       SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END),
       ROUND(AVG(r.response_time_ms), 2),
       SUM(r.tokens_used),
       ROUND(SUM(r.tokens_used) * a.price_per_1k_tokens_usd / 1000.0, 6),
       :now
FROM agent_requests r
JOIN agents a ON a.id = r.agent_id
WHERE r.day BETWEEN :start AND :end
GROUP BY r.tenant_id, r.agent_id, r.day, a.price_per_1k_tokens_usd
"""

_COUNTERS = """
UPDATE tenant_agents SET
    total_requests = COALESCE((SELECT SUM(d.total_requests) FROM tenant_usage_daily d
                               WHERE d.tenant_id = tenant_agents.tenant_id
                                 AND d.agent_id = tenant_agents.agent_id), 0),
    total_errors = COALESCE((SELECT SUM(d.failed_requests) FROM tenant_usage_daily d
                             WHERE d.tenant_id = tenant_agents.tenant_id
                               AND d.agent_id = tenant_agents.agent_id), 0),
    last_used_at = COALESCE((SELECT MAX(r.created_at) FROM agent_requests r
                             WHERE r.tenant_id = tenant_agents.tenant_id
                               AND r.agent_id = tenant_agents.agent_id), last_used_at)
"""


def _typed(sql: str) -> sa.TextClause:
    clause = sa.text(sql).bindparams(
        sa.bindparam("start", type_=sa.Date()), sa.bindparam("end", type_=sa.Date())
    )
    if ":now" in sql:
        clause = clause.bindparams(sa.bindparam("now", type_=UTCDateTime()))
    return clause


def rollup_range(conn: Connection, start: date, end: date) -> RollupResult:
    params = {"start": start, "end": end}
    rows_read = conn.execute(
        _typed("SELECT COUNT(*) FROM agent_requests WHERE day BETWEEN :start AND :end"), params
    ).scalar_one()
    conn.execute(
        _typed("DELETE FROM tenant_usage_daily WHERE date BETWEEN :start AND :end"), params
    )
    written = conn.execute(_typed(_INSERT), {**params, "now": utcnow()}).rowcount
    recompute_agent_counters(conn)
    return RollupResult(start, end, int(rows_read), int(written or 0))


def recompute_agent_counters(conn: Connection) -> None:
    conn.execute(sa.text(_COUNTERS))
