"""Liveness, readiness, the OpenAPI document, and a database that is down (503, never 500)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.runtime import build_runtime
from tests.conftest import auth, issue_token, make_settings


def test_ready_checks_the_database(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["database"] == "ok"


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/health",
        "/ready",
        "/auth/token",
        "/.well-known/jwks.json",
        "/tenant/me",
        "/tenant/agents",
        "/tenant/integrations",
        "/tenant/usage",
        "/tenant/incidents",
    ):
        assert path in paths, path
    usage_params = {p["name"] for p in paths["/tenant/usage"]["get"]["parameters"]}
    assert {"period", "from", "to", "agent_id", "tenant_id"} <= usage_params


def test_database_down_is_503(tmp_path: Path) -> None:
    # Nothing listens on port 1: every connection attempt is refused at once.
    settings = make_settings(tmp_path, "postgresql://postgres@127.0.0.1:1/nowhere")
    runtime = build_runtime(settings)
    try:
        with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
            ready = client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["status"] == "unavailable"
            assert client.get("/health").status_code == 200
            token: Any = issue_token(runtime, "TENANT_USER", uuid.uuid4())
            response = client.get("/tenant/me", headers=auth(token))
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "SERVICE_UNAVAILABLE"
            signin = client.post("/auth/token", data={"username": "a@b.co", "password": "x"})
            assert signin.status_code == 503
    finally:
        runtime.close()
