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
import asyncio
import os
import statistics
import sys
from datetime import timedelta
from typing import Any

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


def _explain(url: str, statement: str, args: Any, repeat: int) -> tuple[float, float]:
    """Median execution and planning time (ms) of one statement, as PostgreSQL reports them
    (run through asyncpg, as the read path sends it: ``$n`` parameters, the same arguments,
    generic plans)."""

    async def explain() -> tuple[float, float]:
        import json

        import asyncpg

        conn = await asyncpg.connect(
            url,
            server_settings={
                "search_path": '"alquimista_platform", public',
                "plan_cache_mode": "force_generic_plan",
            },
        )
        try:
            executions, plannings = [], []
            for _ in range(repeat):
                plan = json.loads(
                    await conn.fetchval(
                        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, *args
                    )
                )[0]
                executions.append(plan["Execution Time"])
                plannings.append(plan["Planning Time"])
            return statistics.median(executions), statistics.median(plannings)
        finally:
            await conn.close()

    return asyncio.run(explain())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--only", default="", help="substring of the route names to run")
    args = parser.parse_args()
    return on_seeded_database(lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    settings = Settings(  # type: ignore[call-arg]
        RATE_LIMIT_ENABLED="false", LOG_LEVEL="WARNING", CACHE_ENABLED="false"
    )
    app = create_app(settings)
    captured: list[tuple[str, Any]] = []
    reads = app.state.runtime.reads
    # every statement the read path sends (asyncpg's query logger, on each new connection)
    reads.query_loggers.append(lambda logged: captured.append((logged.query, logged.args)))
    url = reads.dsn

    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {app_token(app, 'INTERNAL_ADMIN')}"}
        first = client.get(
            "/internal/tenants?limit=1&sort_by=mrr_estimate&sort_order=desc", headers=admin
        )
        first.raise_for_status()
        tenant = first.json()["tenants"][0]["id"]
        print(f"{'route':28} {'trips':>5} {'exec ms':>8} {'plan ms':>8}")
        for name, path in routes(tenant):
            if args.only and args.only not in name:
                continue
            client.get(path, headers=admin).raise_for_status()  # warm
            captured.clear()
            client.get(path, headers=admin).raise_for_status()
            costs = [_explain(url, s, a, args.repeat) for s, a in captured]
            total_exec = sum(c[0] for c in costs)
            total_plan = sum(c[1] for c in costs)
            print(f"{name:28} {len(captured):5d} {total_exec:8.3f} {total_plan:8.3f}")
            if args.verbose:
                for (statement, _a), (ex, pl) in zip(captured, costs, strict=True):
                    text = " ".join(statement.split())
                    print(f"    {ex:8.3f} {pl:7.3f}  {text[:150]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
