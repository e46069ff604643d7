"""``GET /metrics`` (access and format, figures from the database) and the log
guarantees (one JSON access line with tenant and user; no credential is ever logged)."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.core.logging import JsonFormatter
from alquimista_ops.core.schema import job_runs, operational_events
from alquimista_ops.core.settings import Settings
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime, build_runtime
from tests.commands_support import make_tenant
from tests.conftest import auth, make_settings

URL = "/internal/operations/commands"


def scrape(client: TestClient, headers: dict[str, str]) -> dict[tuple[str, tuple[Any, ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[tuple[str, tuple[Any, ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def names(samples: dict[tuple[str, tuple[Any, ...]], float]) -> set[str]:
    return {name for name, _labels in samples}


# -- access ------------------------------------------------------------------------------------
def test_metrics_are_for_internal_users_only(client: TestClient, token_for: Any) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=auth("not-a-token")).status_code == 401
    tenant = token_for("TENANT_ADMIN", uuid.uuid4())
    refused = client.get("/metrics", headers=auth(tenant))
    assert refused.status_code == 403
    assert refused.json()["error"] == "FORBIDDEN"
    for group in ("INTERNAL_ADMIN", "INTERNAL_SUPPORT"):
        assert client.get("/metrics", headers=auth(token_for(group))).status_code == 200


@pytest.fixture
def configured(settings: Settings, engine: Engine, tmp_path: Path) -> Iterator[Runtime]:
    custom = make_settings(
        tmp_path,
        settings.database_url or "",
        METRICS_TOKEN="scrape-secret-7f3a9c",
        METRICS_ALLOW_FROM="10.1.0.0/16, 192.0.2.7",
    )
    runtime = build_runtime(custom, engine)
    yield runtime
    runtime.cache.close()


def test_metrics_token_and_address_allow_list(configured: Runtime) -> None:
    app = create_app(runtime=configured)
    with TestClient(app) as outsider:
        assert outsider.get("/metrics", headers=auth("scrape-secret-7f3a9c")).status_code == 200
        assert outsider.get("/metrics", headers=auth("scrape-secret-7f3a9d")).status_code == 401
        assert outsider.get("/metrics").status_code == 401
    with TestClient(app, client=("10.1.200.3", 40000)) as inside:
        assert inside.get("/metrics").status_code == 200
    with TestClient(app, client=("192.0.2.7", 40000)) as host:
        assert host.get("/metrics").status_code == 200
    with TestClient(app, client=("192.0.2.8", 40000)) as other:
        assert other.get("/metrics").status_code == 401


def test_metrics_can_be_turned_off(settings: Settings, engine: Engine, tmp_path: Path) -> None:
    custom = make_settings(tmp_path, settings.database_url or "", METRICS_ENABLED="false")
    runtime = build_runtime(custom, engine)
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get("/metrics", headers=auth(_admin_token(runtime)))
        assert response.status_code == 404
    runtime.cache.close()


def _admin_token(runtime: Runtime) -> str:
    from tests.conftest import issue_token

    return issue_token(runtime, "INTERNAL_ADMIN")


# -- figures -----------------------------------------------------------------------------------
def test_requests_by_route_template_status_and_latency(
    client: TestClient, token_for: Any, demo_data: SeedReport
) -> None:
    admin = auth(token_for("INTERNAL_ADMIN"))
    before = scrape(client, admin)
    tenant = demo_data.demo_tenant_id
    other = uuid.uuid4()
    assert client.get(f"/internal/tenants/{tenant}", headers=admin).status_code == 200
    assert client.get(f"/internal/tenants/{other}", headers=admin).status_code == 404
    assert client.get("/no/such/path", headers=admin).status_code == 404
    after = scrape(client, admin)
    route = "/internal/tenants/{tenant_id}"
    name = "opdash_http_requests_total"
    for status in ("200", "404"):
        labels = {"method": "GET", "route": route, "status": status}
        assert value(after, name, **labels) - value(before, name, **labels) == 1
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(after, name, **unmatched) - value(before, name, **unmatched) == 1
    # no label carries a concrete id
    assert not any(str(tenant) in str(labels) for _n, labels in after)
    count = value(after, "opdash_http_request_duration_seconds_count", method="GET", route=route)
    assert (
        count
        - value(before, "opdash_http_request_duration_seconds_count", method="GET", route=route)
        == 2
    )
    slowest = value(
        after, "opdash_http_request_duration_seconds_bucket", method="GET", route=route, le="+Inf"
    )
    assert slowest == count


def test_cache_hits_and_misses(client: TestClient, token_for: Any, demo_data: SeedReport) -> None:
    admin = auth(token_for("INTERNAL_ADMIN"))
    before = scrape(client, admin)
    path = f"/internal/tenants/{demo_data.demo_tenant_id}/agents"
    states = [client.get(path, headers=admin).headers["x-cache"] for _ in range(3)]
    after = scrape(client, admin)

    def delta(result: str) -> float:
        labels = {"result": result, "backend": "redis"}
        name = "opdash_cache_operations_total"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hit") == states.count("HIT") >= 2
    assert delta("miss") == states.count("MISS")


# -- logs --------------------------------------------------------------------------------------
class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def requests(self, path: str) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines()
            if line.get("logger") == "alquimista_ops.access" and line.get("path") == path
        ]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Every log record of the process, formatted as production formats it, at INFO (the
    production default) — what would reach stdout."""
    capture = Captured()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def test_one_access_line_per_request_with_tenant_and_user(
    client: TestClient, token_for: Any, demo_data: SeedReport, captured: Captured
) -> None:
    tenant = demo_data.demo_tenant_id
    user_sub = uuid.uuid4()
    user = token_for("TENANT_USER", tenant, sub=user_sub)
    admin_sub = uuid.uuid4()
    admin = token_for("INTERNAL_SUPPORT", sub=admin_sub)
    assert client.get("/tenant/me", headers=auth(user)).status_code == 200
    # internal user: the tenant comes from ?tenant_id=, resolved in a sync dependency (thread pool)
    response = client.get(f"/tenant/agents?tenant_id={tenant}", headers=auth(admin))
    assert response.status_code == 200
    assert client.get("/tenant/me").status_code == 401

    (mine,) = captured.requests("/tenant/me")[:1]
    assert mine["tenant_id"] == str(tenant)
    assert mine["user_sub"] == str(user_sub)
    assert mine["route"] == "/tenant/me"
    assert mine["method"] == "GET"
    assert mine["status"] == 200
    assert mine["level"] == "INFO"
    assert mine["service"] == "operational-dashboard"
    assert isinstance(mine["duration_ms"], float)
    assert re.fullmatch(r"[0-9a-f-]{36}", mine["request_id"])
    assert mine["time"].endswith("+00:00")
    (staff,) = captured.requests("/tenant/agents")
    assert staff["tenant_id"] == str(tenant)
    assert staff["user_sub"] == str(admin_sub)
    anonymous = captured.requests("/tenant/me")[1]
    assert anonymous["status"] == 401
    assert "user_sub" not in anonymous and "tenant_id" not in anonymous
    assert len(captured.requests("/tenant/me")) == 2  # one line per request


def test_no_credential_is_ever_logged(
    client: TestClient,
    token_for: Any,
    demo_data: SeedReport,
    runtime: Runtime,
    captured: Captured,
) -> None:
    secrets: list[str] = []
    # sign-in with the built-in provider: right and wrong passwords
    group, email, password = next(a for a in demo_data.accounts if a[0] == "INTERNAL_ADMIN")
    secrets.append(password)
    signed = client.post("/auth/token", data={"username": email, "password": password})
    assert signed.status_code == 200, signed.text
    issued = signed.json()
    for key in ("id_token", "access_token"):
        secrets.append(issued[key])
    wrong = "Wr0ng-passw0rd-do-not-log"
    secrets.append(wrong)
    assert client.post("/auth/token", data={"username": email, "password": wrong}).status_code in {
        400,
        401,
    }
    # the sign-in page (form post)
    page = client.get("/login")
    csrf = client.cookies.get("opdash_csrf") or ""
    tenant_email, tenant_password = next((a[1], a[2]) for a in demo_data.accounts if a[0] == group)
    secrets.append(tenant_password)
    client.post(
        "/login",
        data={"username": tenant_email, "password": tenant_password, "csrf": csrf},
        follow_redirects=False,
    )
    assert page.status_code == 200
    client.cookies.clear()
    # routes called with tokens (valid, forged, expired-looking)
    admin_token = issued["id_token"]
    tenant_token = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)
    secrets.append(tenant_token)
    forged = tenant_token[:-6] + "AAAAAA"
    secrets.append(forged)
    assert client.get("/tenant/me", headers=auth(tenant_token)).status_code == 200
    assert client.get("/tenant/me", headers=auth(forged)).status_code == 401
    assert client.get("/internal/tenants", headers=auth(admin_token)).status_code == 200
    assert client.get("/metrics", headers=auth(admin_token)).status_code == 200
    # commands carrying secrets in their parameters, valid and refused
    reason_secret = "api_key=sk-live-51Hq-do-not-log"
    secrets.append(reason_secret)
    created = client.post(
        URL,
        json={
            "command_type": "SUSPEND_TENANT",
            "tenant_id": str(demo_data.demo_tenant_id),
            "parameters": {"reason": reason_secret},
        },
        headers={**auth(admin_token), "Idempotency-Key": "idem-secret-9931"},
    )
    assert created.status_code == 201, created.text
    extra_secret = "password=hunter2-do-not-log"
    secrets.append(extra_secret)
    refused = client.post(
        URL,
        json={"command_type": "HEALTH_CHECK", "parameters": {"api_key": extra_secret}},
        headers=auth(admin_token),
    )
    assert refused.status_code == 400
    # the worker runs the command (one log line per command outcome)
    from alquimista_ops.commands.worker import Worker, WorkerConfig

    worker = Worker(
        runtime.engine,
        config=WorkerConfig(listen=False, poll_interval=0.05, backoff_jitter=0.0),
    )
    assert worker.run_until_idle() == 1
    reactivate = client.post(
        URL,
        json={
            "command_type": "REACTIVATE_TENANT",
            "tenant_id": str(demo_data.demo_tenant_id),
            "parameters": {"reason": "restore after the log test"},
        },
        headers=auth(admin_token),
    )
    assert reactivate.status_code == 201
    assert worker.run_until_idle() == 1
    runtime.cache.invalidate_all()

    text = captured.text
    assert captured.requests("/auth/token"), "the requests were logged"
    assert any(line.get("message") == "command succeeded" for line in captured.lines())
    for secret in secrets:
        assert secret not in text
        # nor a recognisable part of a token (its signature)
        if secret.count(".") == 2:
            assert secret.rsplit(".", 1)[1] not in text
    assert "Bearer" not in text


# -- last: it empties the database (clean_db) ------------------------------------------------
def test_commands_backlog_and_aggregation_from_the_database(
    client: TestClient, token_for: Any, clean_db: Engine
) -> None:
    admin = auth(token_for("INTERNAL_ADMIN"))
    samples = scrape(client, admin)
    assert value(samples, "opdash_queue_pending") == 0
    assert value(samples, "opdash_metrics_database_up") == 1
    assert not {n for n in names(samples) if n.startswith("opdash_aggregation_")}

    tenant = make_tenant(clean_db)
    for _ in range(2):
        created = client.post(
            URL, json={"command_type": "HEALTH_CHECK", "tenant_id": str(tenant.id)}, headers=admin
        )
        assert created.status_code == 201, created.text
    with clean_db.begin() as conn:
        conn.execute(
            sa.update(sa.table("operational_commands", sa.column("status")))
            .values(status="ERROR")
            .where(sa.column("command_id") == uuid.UUID(created.json()["command_id"]))
        )
    samples = scrape(client, admin)
    assert value(samples, "opdash_commands", type="HEALTH_CHECK", status="PENDING") == 1
    assert value(samples, "opdash_commands", type="HEALTH_CHECK", status="ERROR") == 1
    assert value(samples, "opdash_queue_pending") == 1
    assert value(samples, "opdash_queue_running") == 0
    assert value(samples, "opdash_queue_oldest_pending_age_seconds") >= 0

    # the usage pipeline's job_runs row alone (no event yet) ...
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(job_runs).values(
                job_name="usage_daily_rollup",
                last_started_at=sa.text("TIMESTAMPTZ '2026-11-29 02:00:00+00'"),
                last_finished_at=sa.text("TIMESTAMPTZ '2026-11-29 02:00:04+00'"),
                last_status="success",
                details={"rows_written": 77},
            )
        )
    samples = scrape(client, admin)
    assert value(samples, "opdash_aggregation_last_duration_seconds") == 4.0
    assert value(samples, "opdash_aggregation_last_rows") == 77
    assert value(samples, "opdash_aggregation_last_success") == 1
    # ... and its latest system event wins (duration and rows as the pipeline records them)
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(operational_events).values(
                id=uuid.uuid4(),
                event_type="usage.rollup.completed",
                event_category="system",
                status="success",
                severity="info",
                title="Daily usage rollup",
                details={"duration_ms": 2500.0, "rows_written": 123},
            )
        )
    samples = scrape(client, admin)
    assert value(samples, "opdash_aggregation_last_duration_seconds") == 2.5
    assert value(samples, "opdash_aggregation_last_rows") == 123
    assert value(samples, "opdash_aggregation_last_run_timestamp_seconds") > 1.7e9
