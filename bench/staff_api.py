"""Latency of the staff and tenant read routes: p50/p95 per route, cache off and cache on.

Runs the real application in-process (every middleware, real PostgreSQL, real Redis) against
a seeded database: ``DATABASE_URL`` if it names one, else (as ``make bench`` runs it) the large
demo data set of ``_serverkit.large_database`` (``BENCH_LARGE_DATABASE_URL``, or seeded and
dropped). By hand::

    createdb ... && DATABASE_URL=postgresql://postgres@127.0.0.1:5432/<db> \\
        alquimista-ops db upgrade && alquimista-ops demo seed --tenants 2000 --days 365
    DATABASE_URL=... .venv/bin/python bench/staff_api.py [--requests 40]

Cache on uses ``BENCH_REDIS_URL`` (default redis://127.0.0.1:6379/14) under a private prefix
that is deleted afterwards; the first request of each route is a MISS and is not counted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.core.settings import Settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _serverkit import app_token, on_seeded_database


def _routes(client: TestClient, admin: dict[str, str]) -> list[tuple[str, str]]:
    first = client.get(
        "/internal/tenants?limit=1&sort_by=mrr_estimate&sort_order=desc", headers=admin
    )
    first.raise_for_status()
    tenant = first.json()["tenants"][0]["id"]
    return [
        ("tenants list", "/internal/tenants"),
        ("tenants list, search", "/internal/tenants?search=cl%C3%ADnica&status=all"),
        (
            "tenants list, sort+page",
            "/internal/tenants?sort_by=mrr_estimate&sort_order=desc&offset=1000&limit=200&status=all",
        ),
        ("tenant detail", f"/internal/tenants/{tenant}"),
        ("tenant agents (internal)", f"/internal/tenants/{tenant}/agents"),
        ("usage overview 7d", "/internal/usage/overview?period=7d"),
        ("usage overview 30d", "/internal/usage/overview?period=30d"),
        ("usage overview 90d", "/internal/usage/overview?period=90d"),
        ("usage overview 365d", "/internal/usage/overview?" + _last_days(365)),
        ("billing overview 30d", "/internal/billing/overview?period=30d"),
        ("billing overview 365d", "/internal/billing/overview?" + _last_days(365)),
        ("tenant/me", f"/tenant/me?tenant_id={tenant}"),
        ("tenant/agents", f"/tenant/agents?tenant_id={tenant}"),
        ("tenant/integrations", f"/tenant/integrations?tenant_id={tenant}"),
        ("tenant/usage 90d", f"/tenant/usage?tenant_id={tenant}&period=90d"),
        ("tenant/incidents", f"/tenant/incidents?tenant_id={tenant}"),
    ]


def _last_days(days: int) -> str:
    from datetime import timedelta

    from alquimista_ops.core.clock import utctoday

    today = utctoday()
    return f"from={today - timedelta(days=days - 1)}&to={today}"


def _measure(
    client: TestClient, url: str, headers: dict[str, str], n: int
) -> tuple[float, float, str]:
    warm = client.get(url, headers=headers)
    if warm.status_code != 200:
        raise SystemExit(f"{url}: {warm.status_code} {warm.text[:200]}")
    times = []
    states = set()
    for _ in range(n):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        states.add(response.headers.get("x-cache", "-"))
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return statistics.median(times), p95, "/".join(sorted(states))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    return on_seeded_database(lambda: measure(args))


def measure(args: argparse.Namespace) -> int:
    base = {"RATE_LIMIT_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
    prefix = f"opdash-bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, dict[str, tuple[float, float, str]]] = {}
    for mode, extra in (
        ("off", {"CACHE_ENABLED": "false"}),
        ("on", {"CACHE_ENABLED": "true", "REDIS_URL": redis_url, "CACHE_PREFIX": prefix}),
    ):
        app = create_app(Settings(**base, **extra))  # type: ignore[arg-type]
        with TestClient(app) as client:
            admin = {"Authorization": f"Bearer {app_token(app, 'INTERNAL_ADMIN')}"}
            for name, url in _routes(client, admin):
                results.setdefault(name, {})[mode] = _measure(client, url, admin, args.requests)
            if mode == "on":
                app.state.runtime.cache.invalidate_all()
    print(f"{'route':28} {'off p50':>9} {'off p95':>9} {'on p50':>9} {'on p95':>9}  x-cache(on)")
    for name, by_mode in results.items():
        off, on = by_mode["off"], by_mode["on"]
        print(f"{name:28} {off[0]:8.1f}ms {off[1]:8.1f}ms {on[0]:8.1f}ms {on[1]:8.1f}ms  {on[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
