"""Usage pipeline benchmark (PostgreSQL): the daily rollup against the bare GROUP BY, and
ingestion throughput through the HTTP route and the command line.

    .venv/bin/python bench/usage_pipeline.py                      # full: 10M rows, 2,000 tenants
    .venv/bin/python bench/usage_pipeline.py --rows 1000000       # smaller run
    BENCH_ROWS=200000 BENCH_CLI_RECORDS=100000 .venv/bin/python bench/usage_pipeline.py

It creates its own database (``alq_bench_<pid>``) on the server of ``--database-url``
(default ``$BENCH_DATABASE_URL`` or ``postgresql://postgres@127.0.0.1:5432/postgres``), builds it
with the real migrations, generates one day of raw requests with ``INSERT … SELECT
generate_series``, prints the figures and drops the database (``--keep`` to keep it).

Targets: rollup of the day ≤ 1.2 × the bare ``SELECT … GROUP BY`` over the same rows;
CLI ingestion ≥ 50,000 records/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import orjson
import sqlalchemy as sa

from alquimista_ops.auth.service_keys import create_service_key
from alquimista_ops.core import migrate
from alquimista_ops.core.bulk import bulk_insert
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.schema import tenant_agents, tenants
from alquimista_ops.core.settings import Settings, normalize_database_url
from alquimista_ops.demo import seed as demo
from alquimista_ops.usage.jobs import rollup_days

ROOT = Path(__file__).resolve().parent.parent
BARE_QUERY = """
SELECT tenant_id, agent_id,
       COUNT(*),
       SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END),
       SUM(response_time_ms),
       SUM(tokens_used)
FROM agent_requests
WHERE day = :day
GROUP BY tenant_id, agent_id
"""


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    p.add_argument("--rows", type=int, default=env_int("BENCH_ROWS", 10_000_000))
    p.add_argument("--tenants", type=int, default=env_int("BENCH_TENANTS", 2_000))
    p.add_argument("--agents-per-tenant", type=int, default=env_int("BENCH_AGENTS_PER_TENANT", 5))
    p.add_argument("--repeats", type=int, default=env_int("BENCH_REPEATS", 5))
    p.add_argument("--http-records", type=int, default=env_int("BENCH_HTTP_RECORDS", 100_000))
    p.add_argument("--cli-records", type=int, default=env_int("BENCH_CLI_RECORDS", 500_000))
    p.add_argument("--port", type=int, default=env_int("BENCH_PORT", 8040))
    p.add_argument("--keep", action="store_true", help="Keep the bench database")
    return p.parse_args()


def with_db(url: str, name: str) -> str:
    return urlparse(url)._replace(path=f"/{name}").geturl()


def admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT")


def runs(values: list[float]) -> str:
    return ", ".join(f"{x:.3f}" for x in values)


def say(text: str) -> None:
    print(text, flush=True)


def seed_world(
    engine: sa.Engine, n_tenants: int, per_tenant: int
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    with engine.begin() as conn:
        demo.seed_reference_data(conn)
        agent_ids = list(conn.execute(sa.text("SELECT id FROM agents ORDER BY name")).scalars())
    tenant_ids = [uuid.uuid4() for _ in range(n_tenants)]
    pairs = [
        (t, agent_ids[(i + k) % len(agent_ids)])
        for i, t in enumerate(tenant_ids)
        for k in range(min(per_tenant, len(agent_ids)))
    ]
    with engine.begin() as conn:
        bulk_insert(
            conn,
            tenants,
            ["id", "name", "name_search", "cnpj", "segment", "plan", "status"],
            (
                (
                    t,
                    f"Bench Tenant {i}",
                    f"bench tenant {i}",
                    f"{i:014d}",
                    "tecnologia",
                    "business",
                    "active",
                )
                for i, t in enumerate(tenant_ids)
            ),
        )
        bulk_insert(
            conn,
            tenant_agents,
            ["id", "tenant_id", "agent_id", "status"],
            ((uuid.uuid4(), t, a, "active") for t, a in pairs),
        )
    return pairs


def generate_day(engine: sa.Engine, day: date, rows: int) -> float:
    """One day of raw requests, spread over every (tenant, agent) pair, with generate_series.

    Indexes are dropped during the load and rebuilt after it (faster than maintaining them)."""
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TEMP TABLE bench_pairs AS SELECT row_number() OVER () - 1 AS idx, "
            "tenant_id, agent_id FROM tenant_agents"
        )
        npairs = conn.exec_driver_sql("SELECT COUNT(*) FROM bench_pairs").scalar_one()
        conn.exec_driver_sql("CREATE UNIQUE INDEX ON bench_pairs (idx)")
        conn.exec_driver_sql("ALTER TABLE agent_requests DROP CONSTRAINT pk_agent_requests")
        conn.exec_driver_sql("DROP INDEX ix_agent_requests_day_tenant_id_agent_id")
        conn.execute(
            sa.text(
                """
                INSERT INTO agent_requests (request_id, tenant_id, agent_id, status,
                                            response_time_ms, tokens_used, created_at, day)
                SELECT 'bench-' || g, p.tenant_id, p.agent_id,
                       CASE WHEN random() < 0.03 THEN 'error' ELSE 'success' END,
                       (random() * 3000)::int, (random() * 2000)::int,
                       CAST(:day AS timestamptz) + (g % 86400) * interval '1 second', :day
                FROM generate_series(1, :rows) AS g
                JOIN bench_pairs p ON p.idx = g % :npairs
                """
            ),
            {"day": day, "rows": rows, "npairs": npairs},
        )
        conn.exec_driver_sql(
            "ALTER TABLE agent_requests ADD CONSTRAINT pk_agent_requests PRIMARY KEY (request_id)"
        )
        conn.exec_driver_sql(
            "CREATE INDEX ix_agent_requests_day_tenant_id_agent_id "
            "ON agent_requests (day, tenant_id, agent_id)"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE agent_requests")
    return time.perf_counter() - started


# The same aggregates as the rollup's scratch table (it also keeps each pair's latest request
# for tenant_agents.last_used_at): separates the cost of that aggregate from the rollup's writes.
BARE_QUERY_SAME_AGGREGATES = BARE_QUERY.replace(
    "SUM(tokens_used)", "SUM(tokens_used),\n       MAX(created_at)"
)


def time_bare(engine: sa.Engine, day: date, query: str = BARE_QUERY) -> float:
    with engine.connect() as conn:
        started = time.perf_counter()
        rows = conn.execute(sa.text(query), {"day": day}).all()
        elapsed = time.perf_counter() - started
        conn.rollback()
    assert rows
    return elapsed


def reset_rollup(engine: sa.Engine, day: date) -> None:
    """Make the next rollup of ``day`` a first one (no rows, counters at zero); not timed."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM tenant_usage_daily WHERE date = :day"), {"day": day})
        conn.exec_driver_sql(
            "UPDATE tenant_agents SET total_requests = 0, total_errors = 0, last_used_at = NULL"
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM tenant_usage_daily, tenant_agents")


def time_rollup(engine: sa.Engine, day: date) -> tuple[float, Any]:
    started = time.perf_counter()
    result = rollup_days(engine, day, day)
    return time.perf_counter() - started, result


def records_for(
    pairs: list[tuple[uuid.UUID, uuid.UUID]], day: date, n: int, prefix: str
) -> list[bytes]:
    base = datetime.combine(day, datetime.min.time(), UTC)
    out = []
    for i in range(n):
        t, a = pairs[i % len(pairs)]
        out.append(
            orjson.dumps(
                {
                    "request_id": f"{prefix}-{i}",
                    "tenant_id": str(t),
                    "agent_id": str(a),
                    "status": "error" if i % 31 == 0 else "success",
                    "response_time_ms": 100 + i % 2000,
                    "tokens_used": i % 1500,
                    "created_at": (base + timedelta(seconds=i % 86400)).isoformat(),
                }
            )
        )
    return out


def bench_http(db_url: str, key: str, lines: list[bytes], port: int) -> tuple[float, int]:
    env = {**os.environ, "DATABASE_URL": db_url, "LOG_LEVEL": "WARNING", "CACHE_ENABLED": "false"}
    env["VAR_DIR"] = tempfile.mkdtemp(prefix="alq-bench-")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("alquimista-ops")),
            *("serve", "--workers", "1", "--host", "127.0.0.1", "--port", str(port)),
        ],
        env=env,
        cwd=ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
        accepted = 0
        with httpx.Client(base_url=base, timeout=120) as client:
            started = time.perf_counter()
            for i in range(0, len(lines), 10_000):
                body = b"\n".join(lines[i : i + 10_000])
                response = client.post(
                    "/internal/ingest/agent-requests", content=body, headers=headers
                )
                response.raise_for_status()
                accepted += response.json()["accepted"]
            elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(env["VAR_DIR"], ignore_errors=True)
    return elapsed, accepted


def bench_cli(db_url: str, lines: list[bytes]) -> tuple[float, str]:
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as fh:
        fh.write(b"\n".join(lines) + b"\n")
        path = fh.name
    env = {**os.environ, "DATABASE_URL": db_url, "LOG_LEVEL": "WARNING", "CACHE_ENABLED": "false"}
    env["VAR_DIR"] = tempfile.mkdtemp(prefix="alq-bench-")
    cli = str(Path(sys.executable).parent / "alquimista-ops")
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [cli, "ingest", path, "--batch-size", "50000"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
    finally:
        os.unlink(path)
        shutil.rmtree(env["VAR_DIR"], ignore_errors=True)
    return elapsed, done.stdout.strip().splitlines()[0]


def main() -> None:
    args = parse_args()
    name = f"alq_bench_{os.getpid()}"
    admin = admin_engine(args.database_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    db_url = with_db(args.database_url, name)
    settings = Settings(DATABASE_URL=db_url, ENV="bench", CACHE_ENABLED=False)
    engine = create_db_engine(settings)
    try:
        migrate.upgrade(engine, settings.db_schema)
        pairs = seed_world(engine, args.tenants, args.agents_per_tenant)
        day = datetime.now(UTC).date() - timedelta(days=1)
        say(f"database {name}: {args.tenants:,} tenants, {len(pairs):,} (tenant, agent) pairs")
        load = generate_day(engine, day, args.rows)
        say(
            f"generated {args.rows:,} raw requests for {day} in {load:.1f} s "
            "(indexes rebuilt, analysed)"
        )

        time_bare(engine, day)  # warm the cache once (and the rollup's code paths)
        time_rollup(engine, day)
        bare, same, rollup = [], [], []
        result = None
        for i in range(args.repeats):  # interleaved, alternating which goes first
            if i % 2:
                bare.append(time_bare(engine, day))
                same.append(time_bare(engine, day, BARE_QUERY_SAME_AGGREGATES))
            reset_rollup(engine, day)
            elapsed, result = time_rollup(engine, day)
            rollup.append(elapsed)
            if not i % 2:
                bare.append(time_bare(engine, day))
                same.append(time_bare(engine, day, BARE_QUERY_SAME_AGGREGATES))
        rerun, _ = time_rollup(engine, day)
        assert result is not None and result.rows_read == args.rows
        b, r = statistics.median(bare), statistics.median(rollup)
        say(f"bare SELECT … GROUP BY:  median {b:.3f} s  (runs: {runs(bare)})")
        say(
            f"bare + MAX(created_at):  median {statistics.median(same):.3f} s  (runs: {runs(same)})"
        )
        say(f"first rollup of the day: median {r:.3f} s  (runs: {runs(rollup)})")
        say(f"  rows read {result.rows_read:,}, daily rows written {result.rows_written:,}")
        say(f"re-run of the same day (rows already there): {rerun:.3f} s")
        say(
            f"rollup / bare = {r / b:.2f} by medians, {min(rollup) / min(bare):.2f} by best runs "
            f"(target ≤ 1.20)  {'OK' if r / b <= 1.2 else 'MISSED'}"
        )
        say(f"rollup / bare with the same aggregates = {r / statistics.median(same):.2f}")

        with engine.begin() as conn:
            _info, key = create_service_key(conn, "bench")
        ingest_day = day - timedelta(days=1)
        if args.http_records:
            lines = records_for(pairs, ingest_day, args.http_records, "http")
            elapsed, accepted = bench_http(db_url, key, lines, args.port)
            say(
                f"HTTP ingestion: {accepted:,} records in batches of 10,000 in {elapsed:.2f} s "
                f"= {accepted / elapsed:,.0f} records/s"
            )
        if args.cli_records:
            lines = records_for(pairs, ingest_day, args.cli_records, "cli")
            elapsed, line = bench_cli(db_url, lines)
            say(
                f"CLI ingestion: {args.cli_records:,} records (JSON Lines) in {elapsed:.2f} s "
                f"wall, process start included = {args.cli_records / elapsed:,.0f} records/s"
            )
            say(f"  CLI says: {line}")
    finally:
        engine.dispose()
        if not args.keep:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            say(f"dropped database {name}")
        admin.dispose()


if __name__ == "__main__":
    main()
