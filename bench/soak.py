"""Memory soak: the server under a mixed load for a while; resident memory of each
worker over time, and every error counted (zero expected).

The application runs as production runs it (``alquimista-ops serve``, PostgreSQL, Redis, the
large demo data set). A separate wrk process drives a mix of requests at concurrency 64 (see
``_soak.lua``): cached and uncached reads of every dashboard API route over many tenants
(so the cache keeps missing and storing new keys), staff listings with varying pages and
searches, ``/metrics`` scrapes, and a trickle of command creations. Resident memory (VmRSS) of
every worker is sampled every ``BENCH_SOAK_SAMPLE`` seconds.

Targets: under 200 MB per worker, no growth after warm-up (the last third's mean against the
first third's after the first minute), zero errors.

Environment (all optional):
  BENCH_SOAK=0                 skip
  BENCH_SOAK_SECONDS (600)     duration (make bench runs the full 10 minutes unless set)
  BENCH_SOAK_SAMPLE (15)       seconds between memory samples
  BENCH_SOAK_CONCURRENCY (64)  connections
  BENCH_LOAD_WORKERS           server workers (default: as `serve` on PostgreSQL, one per
                               CPU up to 4)
  BENCH_SOAK_PORT (8095)
  BENCH_LARGE_DATABASE_URL     reuse a seeded database (see _serverkit.large_database)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _serverkit import (
    BENCH_DIR,
    Server,
    env_flag,
    env_int,
    issue_tokens,
    large_database,
    parse_wrk,
    server_env,
    wrk_available,
)

from alquimista_ops.core.server import default_workers

RSS_TARGET_MB = 200.0


def _lua_config(path: Path, tokens: dict[str, str], tenant_ids: list[str], agent: str) -> None:
    lines = [
        f'admin_token = "{tokens["INTERNAL_ADMIN"]}"',
        f'support_token = "{tokens["INTERNAL_SUPPORT"]}"',
        f'tenant_token = "{tokens["TENANT_ADMIN"]}"',
        f'user_token = "{tokens["TENANT_USER"]}"',
        f'command_tenant = "{tenant_ids[0]}"',
        f'command_agent = "{agent}"',
        "tenant_ids = {" + ",".join(f'"{t}"' for t in tenant_ids) + "}",
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    if not env_flag("BENCH_SOAK"):
        print("soak: skipped (BENCH_SOAK=0)")
        return 0
    if not wrk_available():
        print("soak: skipped, wrk is not installed (Debian: apt-get install -y wrk)")
        return 0
    seconds = env_int("BENCH_SOAK_SECONDS", 600)
    sample = env_int("BENCH_SOAK_SAMPLE", 15)
    connections = env_int("BENCH_SOAK_CONCURRENCY", 64)
    workers = env_int("BENCH_LOAD_WORKERS", default_workers())
    port = env_int("BENCH_SOAK_PORT", 8095)
    print(f"soak: {seconds} s, concurrency {connections}, {workers} worker(s)", flush=True)
    with large_database() as database_url, tempfile.TemporaryDirectory() as var_dir:
        env = server_env(database_url, var_dir)
        tokens = issue_tokens(env)
        with Server("app", port, env, workers) as app:
            admin = {"Authorization": f"Bearer {tokens['INTERNAL_ADMIN']}"}
            with httpx.Client(timeout=30) as client:
                listing = client.get(
                    app.url("/internal/tenants?limit=200&status=all"), headers=admin
                ).json()
                tenant_ids = [t["id"] for t in listing["tenants"]]
                agents = client.get(
                    app.url(f"/internal/tenants/{tenant_ids[0]}/agents"), headers=admin
                ).json()["agents"]
            agent = agents[0]["id"] if agents else ""
            config = Path(var_dir) / "soak_config.lua"
            _lua_config(config, tokens, tenant_ids, agent)
            cmd = [
                "wrk",
                "-t2",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout=10s",
                "--latency",
                "-s",
                str(BENCH_DIR / "_soak.lua"),
                app.url("/"),
            ]
            wrk_env = {**os.environ, "SOAK_CONFIG": str(config)}
            started = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=wrk_env)
            samples: list[tuple[float, list[float]]] = [(0.0, app.rss())]
            print(f"{'t (s)':>6}  RSS per worker (MB)", flush=True)
            print(f"{0:6.0f}  {samples[0][1]}", flush=True)
            while proc.poll() is None:
                time.sleep(min(sample, max(0.5, seconds - (time.monotonic() - started))))
                if proc.poll() is not None:
                    break
                point = (time.monotonic() - started, app.rss())
                samples.append(point)
                print(f"{point[0]:6.0f}  {point[1]}", flush=True)
            out = proc.communicate()[0]
            samples.append((time.monotonic() - started, app.rss()))
            print(f"{samples[-1][0]:6.0f}  {samples[-1][1]}  (end)", flush=True)
    result = parse_wrk(out)
    print()
    print(
        f"requests: {result.requests} in {result.seconds:.0f} s ({result.rps:.0f}/s), "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
    )
    print(
        f"errors: {result.errors} (non-2xx: {result.non_2xx}, socket: {result.socket_errors})"
        f"  {'PASS' if result.errors == 0 else 'FAIL'}"
    )
    peak = max(max(rss) for _t, rss in samples if rss)
    print(
        f"peak RSS per worker: {peak:.1f} MB (target < {RSS_TARGET_MB:.0f})  "
        f"{'PASS' if peak < RSS_TARGET_MB else 'FAIL'}"
    )
    warm = [s for s in samples if s[0] >= min(60.0, seconds / 3) and s[1]]
    if len(warm) >= 3:
        third = max(1, len(warm) // 3)
        first = sum(max(r) for _t, r in warm[:third]) / third
        last = sum(max(r) for _t, r in warm[-third:]) / third
        growth = last - first
        print(
            f"growth after warm-up: {growth:+.1f} MB (first third {first:.1f}, "
            f"last third {last:.1f})  {'PASS' if growth < 10 else 'CHECK'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
