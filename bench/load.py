"""Throughput and latency under load, side by side with the framework's ceiling.

The application is started as production starts it (``alquimista-ops serve``: granian with
uvloop, PostgreSQL, Redis, rate limiter on, JSON logs) over the large demo data
set; beside it, under the same server and worker count, ``bench/bare_app.py``: one FastAPI
route answering a small JSON document (the baseline) and, for information, the same document
from a plain ASGI callable. A separate load-generator process (wrk) drives each at concurrency
64 and the table gives requests/s, p50/p99 and the ratio to the baseline for:

- the bare endpoint (measured before and after the cached reads; the baseline is their mean);
- ``GET /tenant/me`` (a tenant user) and ``GET /internal/tenants`` (staff), cached (X-Cache HIT);
- every dashboard route with the cache off (``CACHE_ENABLED=false``): the API read routes, the
  tenant dashboard's pages and the staff pages (``/company/...``).

Targets: cached authenticated reads >= 0.5 x the bare endpoint; every route's p99 < 100 ms
with the cache off.

Environment (all optional):
  BENCH_LOAD=0                     skip this benchmark
  BENCH_LOAD_SECONDS (8)           duration of each measurement
  BENCH_LOAD_CONCURRENCY (64)      open connections of the load generator
  BENCH_LOAD_WORKERS               server worker processes (both servers); default: what
                                   `serve` starts on PostgreSQL (WEB_CONCURRENCY, else one
                                   per CPU up to 4)
  BENCH_LOAD_THREADS (2)           load-generator threads
  BENCH_LOAD_PORT (8090)           application port; the bare apps use the next two
  BENCH_LOAD_PAGES=0               leave the HTML pages out of the cache-off table
  BENCH_LARGE_DATABASE_URL         reuse an already seeded database (else one is seeded and
                                   dropped: BENCH_LARGE_TENANTS 2000, BENCH_LARGE_DAYS 365)
  BENCH_REDIS_URL                  Redis of the cache (default redis://127.0.0.1:6379/14)
Needs wrk (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _serverkit import (
    LoadResult,
    Server,
    env_flag,
    env_int,
    issue_tokens,
    large_database,
    run_wrk,
    server_env,
    wrk_available,
)

from alquimista_ops.core.server import default_workers

CACHED_RATIO_TARGET = 0.5
P99_TARGET_MS = 100.0


@dataclass
class Row:
    name: str
    mode: str
    result: LoadResult


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


WARM_UP_REQUESTS = 12  # per route, each on a new connection


def _check(server: Server, path: str, headers: dict[str, str], expect_cache: str | None) -> None:
    """Requests before measuring, each on a connection of its own, all held open together so
    that every worker answers some (the kernel spreads new connections over the workers): they
    must succeed, and they warm what a worker builds on a route's first requests (its
    statements compiled and prepared), and the cache when it is on. With a single request
    only one worker was warm, and the other built them during the measurement."""
    clients = [httpx.Client(timeout=30) for _ in range(WARM_UP_REQUESTS)]
    try:
        for client in clients:
            response = client.get(server.url(path), headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    finally:
        for client in clients:
            client.close()
    with httpx.Client(timeout=30) as client:
        if expect_cache is not None:
            response = client.get(server.url(path), headers=headers)
            state = response.headers.get("x-cache")
            if state != expect_cache:
                raise SystemExit(f"{path}: X-Cache {state}, expected {expect_cache}")


def main() -> int:
    if not env_flag("BENCH_LOAD"):
        print("load: skipped (BENCH_LOAD=0)")
        return 0
    if not wrk_available():
        print("load: skipped, wrk is not installed (Debian: apt-get install -y wrk)")
        return 0
    seconds = env_int("BENCH_LOAD_SECONDS", 8)
    connections = env_int("BENCH_LOAD_CONCURRENCY", 64)
    workers = env_int("BENCH_LOAD_WORKERS", default_workers())
    threads = env_int("BENCH_LOAD_THREADS", 2)
    port = env_int("BENCH_LOAD_PORT", 8090)
    with_pages = env_flag("BENCH_LOAD_PAGES")

    def load(server: Server, path: str, headers: dict[str, str] | None = None) -> LoadResult:
        return run_wrk(
            server.url(path),
            seconds=seconds,
            connections=connections,
            threads=threads,
            headers=headers,
        )

    rows: list[Row] = []
    memory: dict[str, list[float]] = {}
    print(
        f"concurrency {connections}, {seconds} s per measurement, {workers} worker(s), "
        f"wrk -t{threads}",
        flush=True,
    )
    with large_database() as database_url, tempfile.TemporaryDirectory() as var_dir:
        env_on = server_env(database_url, var_dir)
        env_off = {**env_on, "CACHE_ENABLED": "false"}
        tokens = issue_tokens(env_on)
        admin = _bearer(tokens["INTERNAL_ADMIN"])
        tenant_user = _bearer(tokens["TENANT_USER"])
        bare_runs: list[LoadResult] = []

        def measure_bare() -> None:
            with Server("bare", port + 1, env_on, workers, app="bare_app:app") as bare:
                _check(bare, "/bare", {}, None)
                bare_runs.append(load(bare, "/bare"))

        measure_bare()
        with Server("raw", port + 2, env_on, workers, app="bare_app:raw") as raw:
            rows.append(Row("plain ASGI callable (info)", "-", load(raw, "/")))

        with Server("app", port, env_on, workers) as app:
            for name, path, headers in (
                ("GET /tenant/me (TENANT_USER)", "/tenant/me", tenant_user),
                ("GET /internal/tenants (INTERNAL_ADMIN)", "/internal/tenants", admin),
            ):
                _check(app, path, headers, "HIT")
                rows.append(Row(name, "cached", load(app, path, headers)))
            memory["cache on"] = app.rss()
        measure_bare()

        with Server("app", port, env_off, workers) as app:
            with httpx.Client(timeout=30) as client:
                listing = client.get(
                    app.url("/internal/tenants?limit=1&sort_by=mrr_estimate&sort_order=desc"),
                    headers=admin,
                ).json()
            big = listing["tenants"][0]["id"]
            routes: list[tuple[str, dict[str, str]]] = [
                ("/tenant/me", tenant_user),
                ("/tenant/agents", tenant_user),
                ("/tenant/integrations", tenant_user),
                ("/tenant/usage", tenant_user),
                ("/tenant/usage?period=90d", tenant_user),
                ("/tenant/incidents", tenant_user),
                ("/internal/tenants", admin),
                ("/internal/tenants?search=cl%C3%ADnica&status=all", admin),
                (f"/internal/tenants/{big}", admin),
                (f"/internal/tenants/{big}/agents", admin),
                ("/internal/usage/overview", admin),
                ("/internal/usage/overview?period=90d", admin),
                ("/internal/billing/overview", admin),
                ("/internal/billing/overview?period=90d", admin),
                ("/internal/operations/commands", admin),
            ]
            if with_pages:
                tenant_cookie = {"Cookie": f"opdash_session={tokens['TENANT_ADMIN']}"}
                admin_cookie = {"Cookie": f"opdash_session={tokens['INTERNAL_ADMIN']}"}
                routes += [
                    ("/dashboard", tenant_cookie),
                    ("/dashboard/agents", tenant_cookie),
                    ("/dashboard/usage", tenant_cookie),
                    ("/dashboard/integrations", tenant_cookie),
                    ("/dashboard/support", tenant_cookie),
                    ("/company", admin_cookie),
                    ("/company/tenants", admin_cookie),
                    (f"/company/tenants/{big}", admin_cookie),
                    ("/company/usage", admin_cookie),
                    ("/company/billing", admin_cookie),
                    ("/company/operations", admin_cookie),
                ]
            for path, headers in routes:
                _check(app, path, headers, None)
                shown = path.replace(big, "{id}")
                rows.append(Row(f"GET {shown}", "cache off", load(app, path, headers)))
            memory["cache off"] = app.rss()

    baseline_rps = sum(r.rps for r in bare_runs) / len(bare_runs)
    print()
    print(
        f"{'endpoint':52} {'mode':9} {'req/s':>8} {'x bare':>7} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'errors':>6}"
    )
    for i, run in enumerate(bare_runs):
        label = f"bare FastAPI endpoint (baseline, run {i + 1})"
        print(
            f"{label:52} {'-':9} {run.rps:8.0f} {run.rps / baseline_rps:7.2f} "
            f"{run.p50_ms:7.2f} {run.p99_ms:7.2f} {run.errors:6d}"
        )
    for row in rows:
        r = row.result
        print(
            f"{row.name:52} {row.mode:9} {r.rps:8.0f} {r.rps / baseline_rps:7.2f} "
            f"{r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.errors:6d}"
        )
    print()
    cached = [row for row in rows if row.mode == "cached"]
    off = [row for row in rows if row.mode == "cache off"]
    worst_ratio = min(row.result.rps / baseline_rps for row in cached)
    worst_p99 = max(off, key=lambda row: row.result.p99_ms)
    errors = sum(row.result.errors for row in rows) + sum(r.errors for r in bare_runs)
    ratio_ok = worst_ratio >= CACHED_RATIO_TARGET
    p99_ok = worst_p99.result.p99_ms < P99_TARGET_MS
    print(
        f"cached reads / bare: worst {worst_ratio:.2f} (target >= {CACHED_RATIO_TARGET}) "
        f"{'PASS' if ratio_ok else 'FAIL'}"
    )
    print(
        f"cache-off p99: worst {worst_p99.result.p99_ms:.1f} ms ({worst_p99.name}) "
        f"(target < {P99_TARGET_MS:.0f} ms) {'PASS' if p99_ok else 'FAIL'}"
    )
    print(f"non-2xx responses and socket errors: {errors}")
    for mode, values in memory.items():
        print(f"resident memory per worker after the {mode} runs: {values} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
