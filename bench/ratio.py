"""The cached ``GET /tenant/me`` against a bare Starlette JSON endpoint on uvicorn.

One worker each, wrk at concurrency 64, the rate limiter off. The application runs as
``alquimista-ops serve --workers 1`` runs it (cache on, Redis, the large demo data set; the
answer warmed to ``X-Cache: HIT`` first); the baseline is ``bench/bare_app.py``'s
``starlette_app`` (one Starlette route answering a small JSON document) on uvicorn with
httptools and uvloop, access log off. The machine's speed drifts, so the two alternate for
``BENCH_RATIO_ROUNDS`` rounds and the ratio is taken of the medians (each round's ratio is
printed too). The application logs as in production (``LOG_LEVEL=INFO``: one JSON access line
per request, written to a file); ``BENCH_LOG_LEVEL=WARNING`` measures it without. Target: at
least 0.4.

Environment (all optional): BENCH_RATIO=0 skips it; BENCH_RATIO_ROUNDS (5),
BENCH_LOAD_SECONDS (8), BENCH_LOAD_CONCURRENCY (64), BENCH_LOAD_THREADS (2),
BENCH_RATIO_PORT (8097; the baseline takes the next), BENCH_LARGE_DATABASE_URL (reuse a
seeded database, see ``_serverkit.large_database``). Needs wrk.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _serverkit import (
    BENCH_DIR,
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

TARGET = 0.4


class UvicornStarlette:
    """``bare_app:starlette_app`` on uvicorn (httptools, uvloop, one worker, no access log)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> UvicornStarlette:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:starlette_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        self.proc = subprocess.Popen(cmd, cwd=BENCH_DIR)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/bare", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit("the Starlette baseline did not start")

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def main() -> int:
    if not env_flag("BENCH_RATIO"):
        print("ratio: skipped (BENCH_RATIO=0)")
        return 0
    if not wrk_available():
        print("ratio: skipped, wrk is not installed (Debian: apt-get install -y wrk)")
        return 0
    rounds = env_int("BENCH_RATIO_ROUNDS", 5)
    seconds = env_int("BENCH_LOAD_SECONDS", 8)
    connections = env_int("BENCH_LOAD_CONCURRENCY", 64)
    threads = env_int("BENCH_LOAD_THREADS", 2)
    port = env_int("BENCH_RATIO_PORT", 8097)
    log_level = os.environ.get("BENCH_LOG_LEVEL", "INFO")

    def load(url: str, headers: dict[str, str] | None = None) -> LoadResult:
        return run_wrk(
            url, seconds=seconds, connections=connections, threads=threads, headers=headers
        )

    print(
        f"cached GET /tenant/me vs a bare Starlette endpoint on uvicorn: 1 worker each, "
        f"concurrency {connections}, {seconds} s per run, wrk -t{threads}, {rounds} rounds, "
        f"application LOG_LEVEL {log_level}",
        flush=True,
    )
    with large_database() as database_url, tempfile.TemporaryDirectory() as var_dir:
        env = server_env(database_url, var_dir, RATE_LIMIT_ENABLED="false", LOG_LEVEL=log_level)
        me = {"Authorization": f"Bearer {issue_tokens(env)['TENANT_USER']}"}
        bare_runs: list[LoadResult] = []
        app_runs: list[LoadResult] = []
        with Server("app", port, env, 1) as app, UvicornStarlette(port + 1) as _bare:
            warm = httpx.get(app.url("/tenant/me"), headers=me, timeout=30)
            warm = httpx.get(app.url("/tenant/me"), headers=me, timeout=30)
            if warm.headers.get("x-cache") != "HIT":
                raise SystemExit(f"/tenant/me: X-Cache {warm.headers.get('x-cache')}")
            for n in range(rounds):
                bare_runs.append(load(f"http://127.0.0.1:{port + 1}/bare"))
                app_runs.append(load(app.url("/tenant/me"), me))
                print(
                    f"round {n + 1}: bare {bare_runs[-1].rps:8.0f} req/s, /tenant/me "
                    f"{app_runs[-1].rps:8.0f} req/s (p99 {app_runs[-1].p99_ms:.1f} ms), "
                    f"ratio {app_runs[-1].rps / bare_runs[-1].rps:.2f}",
                    flush=True,
                )
    bare = statistics.median(r.rps for r in bare_runs)
    app_rps = statistics.median(r.rps for r in app_runs)
    errors = sum(r.errors for r in bare_runs + app_runs)
    ratio = app_rps / bare
    print(
        f"medians: bare Starlette on uvicorn {bare:.0f} req/s, cached /tenant/me {app_rps:.0f} "
        f"req/s: ratio {ratio:.2f} (target >= {TARGET}) {'PASS' if ratio >= TARGET else 'FAIL'}"
    )
    print(f"non-2xx responses and socket errors: {errors}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
