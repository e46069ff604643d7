"""The embedded default: on SQLite the app runs an in-process worker, so a command created
through the API reaches SUCCESS with nothing else started."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.auth.service import setup_groups
from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.schema import tenant_agents
from alquimista_ops.demo import seed as demo
from tests.commands_support import make_tenant
from tests.conftest import auth, issue_token, make_settings

URL = "/internal/operations/commands"


def wait_terminal(client: TestClient, headers: dict[str, str], command_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get(f"{URL}/{command_id}", headers=headers).json()
        if body["status"] in ("SUCCESS", "ERROR", "CANCELLED") or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


def test_sqlite_inprocess_worker_runs_commands(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'embedded.db'}",
        REDIS_URL="",
        COMMAND_POLL_INTERVAL_SECONDS="30",  # only the after-commit wake-up can be this fast
    )
    engine = create_db_engine(settings)
    migrate.upgrade(engine, settings.db_schema)
    with engine.begin() as conn:
        demo.seed_reference_data(conn)
        setup_groups(conn)
    tenant = make_tenant(engine)
    engine.dispose()

    app = create_app(settings)
    with TestClient(app) as client:
        headers = auth(issue_token(app.state.runtime, "INTERNAL_ADMIN", email="a@alquimista.ai"))
        started = time.monotonic()
        created = client.post(
            URL,
            json={
                "command_type": "RESTART_AGENT",
                "tenant_id": str(tenant.id),
                "parameters": {"agent_id": str(tenant.agent_id)},
            },
            headers=headers,
        )
        assert created.status_code == 201, created.text
        result = wait_terminal(client, headers, created.json()["command_id"])
        assert result["status"] == "SUCCESS", result
        assert time.monotonic() - started < 10
        health = client.post(
            URL, json={"command_type": "HEALTH_CHECK", "tenant_id": str(tenant.id)}, headers=headers
        )
        report = wait_terminal(client, headers, health.json()["command_id"])
        assert report["status"] == "SUCCESS"
        assert report["output"]["tenant"]["agents"][0]["status"] == "active"
        assert report["output"]["checks"]["cache"]["status"] == "not_configured"
        listed = client.get(URL, headers=headers).json()
        assert listed["total"] == 2
        with app.state.runtime.engine.connect() as conn:
            assert conn.execute(sa.select(tenant_agents.c.status)).scalar() == "active"
