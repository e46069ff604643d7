"""Benchmark of the command worker against a real PostgreSQL (prints figures, asserts nothing).

1. Drain rate: N PENDING commands of a light type are inserted, then one worker process
   (`alquimista-ops worker`) drains them; commands/s is measured from the first start to the
   last completion recorded in the database (and, for reference, over the process's wall time).
2. Latency: an API server and a worker process run; commands are POSTed one at a time at low
   load and the time from just before each POST to its recorded completion is collected.

Usage: python bench/commands.py [--commands 20000] [--type CLEAR_CACHE] [--latency-samples 200]
Environment: BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres; a
scratch database is created and dropped), BENCH_PORT (default 8031).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
import sqlalchemy as sa

from alquimista_ops.auth.local_idp import LocalAccount
from alquimista_ops.auth.service import setup_groups
from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.schema import agents, operational_commands, tenant_agents, tenants
from alquimista_ops.core.settings import Settings, normalize_database_url
from alquimista_ops.core.text import fold
from alquimista_ops.demo import seed as demo
from alquimista_ops.runtime import build_runtime
from alquimista_ops.tenants.cnpj import generate as generate_cnpj

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def admin_engine(url: str) -> sa.Engine:
    return sa.create_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT")


def scratch_database(base_url: str) -> tuple[str, str]:
    name = f"alq_bench_commands_{os.getpid()}"
    with admin_engine(base_url).connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return name, urlparse(base_url)._replace(path=f"/{name}").geturl()


def drop_database(base_url: str, name: str) -> None:
    with admin_engine(base_url).connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(settings: Settings, count: int = 50) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """``count`` tenants, each with one agent activated (in error); their (tenant, agent)."""
    engine = create_db_engine(settings)
    migrate.upgrade(engine, settings.db_schema)
    rng = random.Random(1)
    targets = []
    with engine.begin() as conn:
        demo.seed_reference_data(conn)
        setup_groups(conn)
        agent_ids = list(conn.execute(sa.select(agents.c.id)).scalars())
        for i in range(count):
            tenant_id, agent_id = uuid.uuid4(), agent_ids[i % len(agent_ids)]
            conn.execute(
                sa.insert(tenants).values(
                    id=tenant_id,
                    name=f"Bench {i} Ltda",
                    name_search=fold(f"Bench {i} Ltda"),
                    cnpj=generate_cnpj(rng),
                    segment="outro",
                    plan="starter",
                    status="active",
                )
            )
            conn.execute(
                sa.insert(tenant_agents).values(
                    id=uuid.uuid4(), tenant_id=tenant_id, agent_id=agent_id, status="error"
                )
            )
            targets.append((tenant_id, agent_id))
    engine.dispose()
    return targets


def env_for(settings: Settings, var_dir: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "VAR_DIR": var_dir,
        "ENV": "bench",
        "CACHE_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def status_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(operational_commands.c.status, sa.func.count()).group_by(
                operational_commands.c.status
            )
        )
        return {s: int(n) for s, n in rows}


def busy_left(engine: sa.Engine) -> bool:
    """Any command not terminal yet (an index probe, cheap enough to poll)."""
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(operational_commands.c.command_id)
                .where(operational_commands.c.status.in_(("PENDING", "RUNNING")))
                .limit(1)
            ).first()
            is not None
        )


def drain(
    settings: Settings,
    var_dir: str,
    count: int,
    command_type: str,
    targets: list[tuple[uuid.UUID, uuid.UUID]] | None,
    concurrency: int,
    batch: int,
) -> None:
    engine = create_db_engine(settings)
    with engine.begin() as conn:
        conn.execute(sa.delete(operational_commands))
        now = datetime.now(UTC)
        rows = [
            {
                "command_id": uuid.uuid4(),
                "command_type": command_type,
                "tenant_id": targets[i % len(targets)][0] if targets else None,
                "parameters": {"agent_id": str(targets[i % len(targets)][1])} if targets else {},
                "created_by": "bench",
                "created_at": now,
                "next_attempt_at": now,
                "expires_at": now + timedelta(days=90),
            }
            for i in range(count)
        ]
        for start in range(0, count, 5000):
            conn.execute(sa.insert(operational_commands), rows[start : start + 5000])
    started = time.perf_counter()
    proc = subprocess.Popen(
        [
            str(BIN / "alquimista-ops"),
            "worker",
            "--concurrency",
            str(concurrency),
            "--batch-size",
            str(batch),
        ],
        env=env_for(settings, var_dir),
        cwd=ROOT,
    )
    try:
        while busy_left(engine):
            time.sleep(0.1)
        wall = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(30)
    with engine.connect() as conn:
        first, last = conn.execute(
            sa.select(
                sa.func.min(operational_commands.c.started_at),
                sa.func.max(operational_commands.c.completed_at),
            )
        ).one()
    counts = status_counts(engine)
    busy = (last - first).total_seconds()
    print(
        f"drain  {command_type:<14} n={count} concurrency={concurrency} batch={batch}: "
        f"{count / busy:,.0f} commands/s (first start → last completion, {busy:.2f} s); "
        f"{count / wall:,.0f}/s over the process wall time incl. start-up ({wall:.2f} s); "
        f"statuses {counts}"
    )
    engine.dispose()


def latency(
    settings: Settings, var_dir: str, targets: list[tuple[uuid.UUID, uuid.UUID]], samples: int
) -> None:
    tenant_id, agent_id = targets[0]
    port = int(os.environ.get("BENCH_PORT", "8031"))
    env = env_for(settings, var_dir, LOCAL_ISSUER=f"http://127.0.0.1:{port}/local-idp")
    engine = create_db_engine(settings)
    with engine.begin() as conn:
        conn.execute(sa.delete(operational_commands))
    runtime = build_runtime(Settings(**{k: v for k, v in env.items() if k.isupper()}), engine)
    assert runtime.idp is not None
    token = runtime.idp.issue_tokens(
        LocalAccount(uuid.uuid4(), "bench@alquimista.ai", "Bench", "INTERNAL_ADMIN", None)
    )["id_token"]
    server = subprocess.Popen(
        [str(BIN / "alquimista-ops"), "serve", "--port", str(port)], env=env, cwd=ROOT
    )
    worker = subprocess.Popen([str(BIN / "alquimista-ops"), "worker"], env=env, cwd=ROOT)
    sent: dict[str, float] = {}
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as client:
            for _ in range(100):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            time.sleep(1.0)  # let the worker start listening
            bodies = [
                {"command_type": "HEALTH_CHECK", "tenant_id": str(tenant_id)},
                {
                    "command_type": "RESTART_AGENT",
                    "tenant_id": str(tenant_id),
                    "parameters": {"agent_id": str(agent_id)},
                },
            ]
            for i in range(samples):
                t0 = time.time()
                response = client.post("/internal/operations/commands", json=bodies[i % 2])
                response.raise_for_status()
                sent[response.json()["command_id"]] = t0
                time.sleep(0.05)  # low load: one command every ~50 ms
        deadline = time.monotonic() + 30
        while status_counts(engine).get("SUCCESS", 0) < samples and time.monotonic() < deadline:
            time.sleep(0.05)
        with engine.connect() as conn:
            done = dict(
                conn.execute(
                    sa.select(
                        sa.cast(operational_commands.c.command_id, sa.String),
                        operational_commands.c.completed_at,
                    ).where(operational_commands.c.status == "SUCCESS")
                ).all()
            )
    finally:
        for proc in (worker, server):
            proc.terminate()
            proc.wait(30)
    values = sorted((done[cid].timestamp() - t0) * 1000 for cid, t0 in sent.items() if cid in done)
    print(
        f"latency POST → SUCCESS at low load (n={len(values)}/{samples}, HEALTH_CHECK and "
        f"RESTART_AGENT alternating): median {statistics.median(values):.1f} ms, "
        f"p95 {values[int(len(values) * 0.95) - 1]:.1f} ms, max {values[-1]:.1f} ms"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name, url = scratch_database(base)
    try:
        with tempfile.TemporaryDirectory() as var_dir:
            settings = Settings(DATABASE_URL=url, VAR_DIR=var_dir, CACHE_ENABLED=False)
            targets = prepare(settings)
            drain(
                settings, var_dir, args.commands, "CLEAR_CACHE", None, args.concurrency, args.batch
            )
            drain(
                settings,
                var_dir,
                args.commands // 2,
                "RESTART_AGENT",
                targets,
                args.concurrency,
                args.batch,
            )
            latency(settings, var_dir, targets, args.latency_samples)
    finally:
        drop_database(base, name)


if __name__ == "__main__":
    main()
