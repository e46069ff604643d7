"""The embedded default (SQLite file): migrate, seed, sign in and read, with no server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.runtime import build_runtime
from alquimista_ops.core.settings import Settings
from alquimista_ops.demo import seed as demo
from tests.conftest import auth


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any, Any]]:
    var_dir: Path = tmp_path_factory.mktemp("embedded")
    settings = Settings(
        ENV="test",
        DATABASE_URL=f"sqlite:///{var_dir / 'alquimista.db'}",
        VAR_DIR=str(var_dir),
        CACHE_ENABLED=False,
        LOG_LEVEL="WARNING",
    )
    engine = create_db_engine(settings)
    assert engine.dialect.name == "sqlite"
    migrate.upgrade(engine, settings.db_schema)
    today = datetime.now(UTC).date()
    report = demo.seed(engine, demo.SeedOptions(tenants=4, days=15, seed=3, today=today))
    app = create_app(runtime=build_runtime(settings, engine))
    with TestClient(app) as client:
        yield client, report, engine
    engine.dispose()


def sign_in(client: TestClient, report: Any, group: str) -> dict[str, Any]:
    email, password = next((e, p) for g, e, p in report.accounts if g == group)
    response = client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def test_sign_in_and_read_own_tenant(embedded: tuple[TestClient, Any, Any]) -> None:
    client, report, engine = embedded
    token = sign_in(client, report, "TENANT_USER")["id_token"]
    me = client.get("/tenant/me", headers=auth(token))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == str(report.demo_tenant_id)
    with engine.connect() as conn:
        (month,) = conn.execute(
            sa.text(
                "SELECT COALESCE(SUM(total_requests), 0) FROM tenant_usage_daily "
                "WHERE tenant_id = :t AND date >= :m"
            ).bindparams(sa.bindparam("t", type_=sa.Uuid()), sa.bindparam("m", type_=sa.Date())),
            {"t": report.demo_tenant_id, "m": datetime.now(UTC).date().replace(day=1)},
        ).one()
    assert me.json()["usage"]["requests_this_month"] == month


def test_usage_on_sqlite(embedded: tuple[TestClient, Any, Any]) -> None:
    client, report, engine = embedded
    token = sign_in(client, report, "TENANT_ADMIN")["access_token"]
    response = client.get("/tenant/usage", params={"period": "30d"}, headers=auth(token))
    assert response.status_code == 200, response.text
    body = response.json()
    with engine.connect() as conn:
        total, failed = conn.execute(
            sa.text(
                "SELECT SUM(total_requests), SUM(failed_requests) FROM tenant_usage_daily "
                "WHERE tenant_id = :t"
            ).bindparams(sa.bindparam("t", type_=sa.Uuid())),
            {"t": report.demo_tenant_id},
        ).one()
        raw = conn.execute(sa.text("SELECT COUNT(*) FROM agent_requests")).scalar_one()
    assert total > 0 and raw > 0
    assert body["summary"]["total_requests"] == total
    assert body["summary"]["failed_requests"] == failed
    assert len(body["daily_data"]) == 30
    assert sum(d["total_requests"] for d in body["daily_data"]) == total
    assert sum(a["total_requests"] for a in body["by_agent"]) == total


def test_other_routes_and_rules_on_sqlite(embedded: tuple[TestClient, Any, Any]) -> None:
    client, report, _engine = embedded
    user = auth(sign_in(client, report, "TENANT_USER")["id_token"])
    for route in ("/tenant/agents", "/tenant/integrations", "/tenant/incidents"):
        assert client.get(route, headers=user).status_code == 200, route
    staff = auth(sign_in(client, report, "INTERNAL_SUPPORT")["id_token"])
    assert client.get("/tenant/me", headers=staff).status_code == 400
    other = client.get(
        "/tenant/me", params={"tenant_id": str(report.demo_tenant_id)}, headers=staff
    )
    assert other.status_code == 200
    assert client.get("/tenant/me").status_code == 401
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
