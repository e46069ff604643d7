"""SQL statements per request and their PostgreSQL execution time, per dashboard read route.

Runs the real application in-process with the cache off against an already seeded PostgreSQL
database (e.g. the large demo data set), records every statement each request sends, then
replays each statement under ``EXPLAIN (ANALYZE, BUFFERS)`` and sums the ``Execution Time`` the
server reports (the median of ``--repeat`` replays per statement). Planning time is shown apart.
Machine noise barely moves these figures, unlike wall-clock latency::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> .venv/bin/python bench/query_costs.py
    ... bench/query_costs.py --verbose    # every statement with its time

Without a PostgreSQL ``DATABASE_URL`` (as ``make bench`` runs it) it measures the large data set
of ``bench/_serverkit.large_database`` (``BENCH_LARGE_DATABASE_URL``, or seeded and dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.settings import Settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _serverkit import app_token, on_seeded_database


def _last_days(days: int) -> str:
    today = utctoday()
    return f"from={today - timedelta(days=days - 1)}&to={today}"


def routes(tenant: str) -> list[tuple[str, str]]:
    return [
        ("usage overview 7d", "/internal/usage/overview?period=7d"),
        ("usage overview 30d", "/internal/usage/overview?period=30d"),
        ("usage overview 90d", "/internal/usage/overview?period=90d"),
        ("usage overview 365d", "/internal/usage/overview?" + _last_days(365)),
        ("billing overview 30d", "/internal/billing/overview?period=30d"),
        ("billing overview 90d", "/internal/billing/overview?period=90d"),
        ("billing overview 365d", "/internal/billing/overview?" + _last_days(365)),
        ("tenants list", "/internal/tenants"),
        ("tenants list, search", "/internal/tenants?search=cl%C3%ADnica&status=all"),
        (
            "tenants list, mrr page",
            "/internal/tenants?sort_by=mrr_estimate&sort_order=desc&offset=1000&limit=200"
            "&status=all",
        ),
        ("tenant detail", f"/internal/tenants/{tenant}"),
        ("tenant agents (internal)", f"/internal/tenants/{tenant}/agents"),
        ("tenant/me", f"/tenant/me?tenant_id={tenant}"),
        ("tenant/agents", f"/tenant/agents?tenant_id={tenant}"),
        ("tenant/integrations", f"/tenant/integrations?tenant_id={tenant}"),
        ("tenant/usage 7d", f"/tenant/usage?tenant_id={tenant}&period=7d"),
        ("tenant/usage 30d", f"/tenant/usage?tenant_id={tenant}&period=30d"),
        ("tenant/usage 90d", f"/tenant/usage?tenant_id={tenant}&period=90d"),
        ("tenant/incidents", f"/tenant/incidents?tenant_id={tenant}"),
        ("operations/commands", "/internal/operations/commands"),
    ]


def _explain(engine: sa.Engine, statement: str, params: Any, repeat: int) -> tuple[float, float]:
    """Median execution and planning time (ms) of one statement, as PostgreSQL reports them."""
    executions, plannings = [], []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for _ in range(repeat):
            cur.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
            plan = cur.fetchone()[0][0]
            executions.append(plan["Execution Time"])
            plannings.append(plan["Planning Time"])
        raw.rollback()
    finally:
        raw.close()
    return statistics.median(executions), statistics.median(plannings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--only", default="", help="substring of the route names to run")
    args = parser.parse_args()
    return on_seeded_database(lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    # DB_ASYNC_READS off: the reads then run on the engine observed below (the same statements
    # the server runs on its event loop's engine).
    settings = Settings(  # type: ignore[call-arg]
        RATE_LIMIT_ENABLED="false",
        LOG_LEVEL="WARNING",
        CACHE_ENABLED="false",
        DB_ASYNC_READS="false",
    )
    app = create_app(settings)
    captured: list[tuple[str, Any]] = []

    with TestClient(app) as client:
        engine = app.state.runtime.engine

        @sa.event.listens_for(engine, "before_cursor_execute")
        def _record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _m: bool) -> None:
            captured.append((statement, params))

        admin = {"Authorization": f"Bearer {app_token(app, 'INTERNAL_ADMIN')}"}
        first = client.get(
            "/internal/tenants?limit=1&sort_by=mrr_estimate&sort_order=desc", headers=admin
        )
        first.raise_for_status()
        tenant = first.json()["tenants"][0]["id"]
        print(f"{'route':28} {'stmts':>5} {'exec ms':>8} {'plan ms':>8}")
        for name, url in routes(tenant):
            if args.only and args.only not in name:
                continue
            client.get(url, headers=admin).raise_for_status()  # warm
            captured.clear()
            client.get(url, headers=admin).raise_for_status()
            statements = [(s, p) for s, p in captured if not s.lstrip().upper().startswith("SET")]
            costs = [_explain(engine, s, p, args.repeat) for s, p in statements]
            total_exec = sum(c[0] for c in costs)
            total_plan = sum(c[1] for c in costs)
            print(f"{name:28} {len(statements):5d} {total_exec:8.3f} {total_plan:8.3f}")
            if args.verbose:
                for (statement, _p), (ex, pl) in zip(statements, costs, strict=True):
                    text = " ".join(statement.split())
                    print(f"    {ex:8.3f} {pl:7.3f}  {text[:150]}")
        sa.event.remove(engine, "before_cursor_execute", _record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
