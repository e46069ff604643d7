"""Benchmark: the large demo data set (``demo seed --tenants 2000 --days 365``) on PostgreSQL.

Creates a throw-away database on the server of ``BENCH_DATABASE_URL`` (default: the test
server), applies the migrations, times the seed and each stage, prints the figures and drops
the database. The target is under one minute on a 2-core machine.

    .venv/bin/python bench/seed_large.py [--tenants N] [--days D] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from urllib.parse import urlparse

import sqlalchemy as sa

from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.settings import Settings, normalize_database_url
from alquimista_ops.demo import seed as demo

SERVER_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)


def _admin() -> sa.Engine:
    return sa.create_engine(normalize_database_url(SERVER_URL), isolation_level="AUTOCOMMIT")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    name = f"alq_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = urlparse(SERVER_URL)._replace(path=f"/{name}").geturl()
    try:
        with tempfile.TemporaryDirectory() as var_dir:
            settings = Settings(DATABASE_URL=url, VAR_DIR=var_dir, LOG_LEVEL="WARNING")
            engine = create_db_engine(settings)
            migrate.upgrade(engine, settings.db_schema)
            stages: list[tuple[str, float]] = []
            started = time.perf_counter()

            def progress(stage: str, done: int, total: int) -> None:
                if done == 0:
                    stages.append((stage, time.perf_counter()))

            report = demo.seed(
                engine,
                demo.SeedOptions(tenants=args.tenants, days=args.days, seed=args.seed),
                progress,
            )
            elapsed = time.perf_counter() - started
            engine.dispose()
        bounds = [t for _s, t in stages] + [started + elapsed]
        print(f"demo seed --tenants {args.tenants} --days {args.days} (PostgreSQL)")
        for (stage, begin), end in zip(stages, bounds[1:], strict=False):
            print(f"  {stage:<14} {end - begin:6.1f} s")
        rows = sum(report.counts.values())
        for table, count in report.counts.items():
            print(f"  {table:<22} {count:>10,}")
        print(f"total {elapsed:.1f} s, {rows / elapsed:,.0f} rows/s (target: < 60 s)")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
