"""The embedded default (SQLite) serves the staff routes too: same migrations, same queries."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.runtime import build_runtime
from alquimista_ops.demo import seed as demo
from tests.conftest import SEED_TODAY, auth, issue_token, make_settings


@pytest.mark.parametrize("cache", ["memory", "off"])
def test_staff_routes_on_sqlite(tmp_path: Path, cache: str) -> None:
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    settings = make_settings(
        tmp_path, url, REDIS_URL="", CACHE_ENABLED="true" if cache == "memory" else "false"
    )
    engine = create_db_engine(settings)
    migrate.upgrade(engine, settings.db_schema)
    report = demo.seed(engine, demo.SeedOptions(tenants=12, days=40, seed=3, today=SEED_TODAY))
    runtime = build_runtime(settings, engine)
    app = create_app(runtime=runtime)
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    tenant = report.demo_tenant_id
    start = SEED_TODAY.replace(day=1)
    try:
        with TestClient(app) as client:
            for path in (
                "/internal/tenants?status=all&sort_by=mrr_estimate&sort_order=desc",
                "/internal/tenants?search=LTDA&status=all",
                f"/internal/tenants/{tenant}",
                f"/internal/tenants/{tenant}/agents",
                f"/internal/usage/overview?from={start}&to={SEED_TODAY}",
                f"/internal/billing/overview?from={start}&to={SEED_TODAY}",
                f"/tenant/usage?tenant_id={tenant}&period=30d",
            ):
                response = client.get(path, headers=admin)
                assert response.status_code == 200, (path, response.text)
            overview = client.get(
                f"/internal/usage/overview?from={start}&to={SEED_TODAY}", headers=admin
            ).json()
            with engine.connect() as conn:
                expected = conn.execute(
                    sa.text(
                        "SELECT SUM(total_requests) FROM tenant_usage_daily"
                        " WHERE date BETWEEN :a AND :b"
                    ).bindparams(
                        sa.bindparam("a", type_=sa.Date()), sa.bindparam("b", type_=sa.Date())
                    ),
                    {"a": start, "b": SEED_TODAY},
                ).scalar_one()
                active_mrr = conn.execute(
                    sa.text("SELECT SUM(mrr_estimate) FROM tenants WHERE status = 'active'")
                ).scalar_one()
            assert overview["global_stats"]["total_requests"] == int(expected) > 0
            billing = client.get(
                f"/internal/billing/overview?from={start}&to={SEED_TODAY}", headers=admin
            ).json()
            assert billing["total_mrr"] == pytest.approx(float(active_mrr), abs=0.005)
            assert billing["revenue_trend"][-1]["mrr"] == pytest.approx(billing["total_mrr"])
    finally:
        engine.dispose()
