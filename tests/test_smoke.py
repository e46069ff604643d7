from __future__ import annotations

from fastapi.testclient import TestClient

from alquimista_ops.demo.seed import SeedReport
from tests.conftest import auth


def test_health(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.headers["x-request-id"]


def test_tenant_admin_reads_own_tenant(
    client: TestClient, demo_data: SeedReport, token_for: object
) -> None:
    tenant_id = demo_data.demo_tenant_id
    token = token_for("TENANT_ADMIN", tenant_id)  # type: ignore[operator]
    response = client.get("/tenant/me", headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(tenant_id)
