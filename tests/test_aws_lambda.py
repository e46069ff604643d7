"""The Lambda handlers answer API Gateway HTTP API (v2) events exactly as the HTTP server
answers the same requests; the aggregation job rolls up the previous day."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

import base64
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.aws import handlers, jobs, lambda_runtime
from alquimista_ops.aws.layout import ROUTES
from alquimista_ops.core.schema import agent_requests, tenant_usage_daily, tenants
from alquimista_ops.demo import seed as demo
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime
from tests.conftest import SEED_TODAY

KEY_HEADERS = ("content-type", "cache-control", "x-request-id", "strict-transport-security")


@dataclass
class FakeContext:
    function_name: str = "alquimista-test-fn-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(autouse=True)
def lambda_runtime_installed(runtime: Runtime) -> Iterator[None]:
    lambda_runtime.use_runtime(runtime)
    yield
    lambda_runtime.use_runtime(None)


def http_event(
    route_key: str,
    path: str,
    query: dict[str, str] | None = None,
    token: str | None = None,
    *,
    claims: dict[str, Any] | None = None,
    path_parameters: dict[str, str] | None = None,
    request_id: str | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    method = route_key.split(" ", 1)[0]
    headers = {
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "user-agent": "pytest",
        "x-request-id": request_id or str(uuid.uuid4()),
    }
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if claims is None and token is not None:
        claims = jwt.decode(token, options={"verify_signature": False})
    raw_body = json.dumps(body) if body is not None else None
    if raw_body is not None:
        headers["content-type"] = "application/json"
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": urlencode(query or {}),
        "headers": headers,
        "queryStringParameters": dict(query) if query else None,
        "pathParameters": path_parameters,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "authorizer": {"jwt": {"claims": claims or {}, "scopes": None}},
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": "apigw-" + uuid.uuid4().hex[:12],
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": raw_body,
        "isBase64Encoded": False,
    }


def lambda_json(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


def _tenant_ids(engine: Engine) -> list[uuid.UUID]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(tenants.c.id).order_by(tenants.c.name)).scalars())


# (group, own tenant?, route attr, route key, path, query)
CASES: list[tuple[str, str, str, dict[str, str]]] = [
    ("TENANT_ADMIN", "tenant_me", "/tenant/me", {}),
    ("TENANT_ADMIN", "tenant_agents", "/tenant/agents", {"status": "all"}),
    ("TENANT_ADMIN", "tenant_integrations", "/tenant/integrations", {}),
    ("TENANT_USER", "tenant_integrations", "/tenant/integrations", {}),
    ("TENANT_USER", "tenant_usage", "/tenant/usage", {"period": "7d"}),
    ("TENANT_ADMIN", "tenant_usage", "/tenant/usage", {"period": "30d"}),
    ("TENANT_ADMIN", "tenant_incidents", "/tenant/incidents", {"status": "all", "limit": "5"}),
    ("TENANT_ADMIN", "tenant_usage", "/tenant/usage", {"period": "13d"}),  # 400
    ("TENANT_ADMIN", "tenant_incidents", "/tenant/incidents", {"limit": "500"}),  # 400
    ("TENANT_USER", "tenant_me", "/tenant/me", {"tenant_id": "OTHER"}),  # 403
    ("INTERNAL_ADMIN", "tenant_me", "/tenant/me", {"tenant_id": "OWN"}),
    ("INTERNAL_SUPPORT", "tenant_agents", "/tenant/agents", {"tenant_id": "OWN"}),
    ("INTERNAL_ADMIN", "tenant_me", "/tenant/me", {}),  # 400: internal users pass tenant_id
    ("INTERNAL_ADMIN", "tenant_me", "/tenant/me", {"tenant_id": str(uuid.UUID(int=1))}),  # 404
    ("NONE", "tenant_me", "/tenant/me", {}),  # 401
    ("BAD", "tenant_agents", "/tenant/agents", {}),  # 401
]


@pytest.mark.parametrize(("group", "attr", "path", "query"), CASES)
def test_lambda_answers_like_http_server(
    client: TestClient,
    demo_data: SeedReport,
    engine: Engine,
    token_for: Any,
    group: str,
    attr: str,
    path: str,
    query: dict[str, str],
) -> None:
    own = demo_data.demo_tenant_id
    other = next(t for t in _tenant_ids(engine) if t != own)
    query = {
        k: (str(own) if v == "OWN" else str(other) if v == "OTHER" else v) for k, v in query.items()
    }
    if group == "NONE":
        token = None
    elif group == "BAD":
        token = token_for("TENANT_ADMIN", own)[:-6] + "AAAAAA"
    elif group.startswith("TENANT"):
        token = token_for(group, own)
    else:
        token = token_for(group)
    route = next(r for r in ROUTES if r.attr == attr)
    request_id = str(uuid.uuid4())

    headers = {"x-request-id": request_id, "x-forwarded-proto": "https"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    expected = client.get(path, params=query, headers=headers)

    claims = None if group != "BAD" else {}
    event = http_event(route.route_key, path, query, token, claims=claims, request_id=request_id)
    response = getattr(handlers, attr)(event, FakeContext(function_name=f"fn-{route.name}"))

    assert response["statusCode"] == expected.status_code, response.get("body")
    assert lambda_json(response) == expected.json()
    got_headers = {k.lower(): v for k, v in response["headers"].items()}
    for name in KEY_HEADERS:
        assert got_headers.get(name) == expected.headers.get(name), name
    assert ("x-cache" in got_headers) == ("x-cache" in expected.headers)


def test_every_route_has_its_handler() -> None:
    assert len(ROUTES) == 12
    assert len({r.route_key for r in ROUTES}) == 12
    for route in ROUTES:
        handler = getattr(handlers, route.attr)
        assert callable(handler)
        assert handler.__name__ == route.attr


def test_forged_authorizer_claims_grant_nothing(demo_data: SeedReport, token_for: Any) -> None:
    """The handler trusts only the token it verifies, not the claims beside it."""
    tenant_token = token_for("TENANT_USER", demo_data.demo_tenant_id)
    forged = {"sub": "x", "cognito:groups": ["INTERNAL_ADMIN"], "custom:tenant_id": ""}
    event = http_event(
        "GET /tenant/me",
        "/tenant/me",
        {"tenant_id": str(uuid.UUID(int=5))},
        tenant_token,
        claims=forged,
    )
    response = handlers.tenant_me(event, FakeContext())
    assert response["statusCode"] == 403
    assert lambda_json(response)["error"] == "FORBIDDEN"


def test_function_refuses_another_routes_event(demo_data: SeedReport, token_for: Any) -> None:
    token = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)
    event = http_event("GET /tenant/agents", "/tenant/agents", None, token)
    response = handlers.tenant_me(event, FakeContext())
    assert response["statusCode"] == 404
    assert "GET /tenant/me" in lambda_json(response)["message"]


def test_runtime_and_app_reused_across_invocations(
    demo_data: SeedReport, token_for: Any, runtime: Runtime
) -> None:
    token = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)
    first = lambda_runtime.get_bridge()
    for _ in range(2):
        event = http_event("GET /tenant/me", "/tenant/me", None, token)
        assert handlers.tenant_me(event, FakeContext())["statusCode"] == 200
    assert lambda_runtime.get_bridge() is first
    assert lambda_runtime.get_runtime() is runtime


# -- the aggregation job ---------------------------------------------------------------------
def test_aggregation_range() -> None:
    scheduled = {"time": "2026-11-29T02:00:00Z", "detail-type": "Scheduled Event"}
    assert jobs.aggregation_range(scheduled) == (date(2026, 11, 28), date(2026, 11, 28))
    assert jobs.aggregation_range({"from": "2026-01-01", "to": "2026-01-31"}) == (
        date(2026, 1, 1),
        date(2026, 1, 31),
    )
    for bad in ({"from": "2026-02-01", "to": "2026-01-01"}, {"from": "x"}, {"time": "nope"}):
        with pytest.raises(jobs.InvalidJobEvent):
            jobs.aggregation_range(bad)
    with pytest.raises(jobs.InvalidJobEvent):
        jobs.aggregation_range({"from": "2024-01-01", "to": "2025-06-01"})


def test_aggregate_metrics_rolls_up_previous_day(
    clean_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    demo.seed(
        clean_db,
        demo.SeedOptions(tenants=3, days=5, seed=3, raw_days=2, today=SEED_TODAY),
    )
    day = date(2026, 11, 28)
    with clean_db.begin() as conn:
        raw = conn.execute(
            sa.select(sa.func.count(), sa.func.sum(agent_requests.c.tokens_used)).where(
                agent_requests.c.day == day
            )
        ).one()
        conn.execute(sa.delete(tenant_usage_daily).where(tenant_usage_daily.c.date == day))
    assert raw[0] > 0

    event = {"time": "2026-11-29T02:00:00Z", "detail-type": "Scheduled Event"}
    report = jobs.aggregate_metrics(event, FakeContext(function_name="aggregate"))
    assert report["start"] == report["end"] == "2026-11-28"
    assert report["rows_read"] == raw[0]

    def totals() -> Any:
        with clean_db.connect() as conn:
            return conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.sum(tenant_usage_daily.c.total_requests),
                    sa.func.sum(tenant_usage_daily.c.total_tokens_used),
                ).where(tenant_usage_daily.c.date == day)
            ).one()

    records = [r for r in caplog.records if r.getMessage() == "usage rollup finished"]
    assert records, "the job logs its result"
    line = json.loads(lambda_runtime.logger.registered_formatter.format(records[0]))
    assert line["service"] == "operational-dashboard"
    assert line["function_name"] == "aggregate"  # Lambda context injected
    assert line["rows_read"] == raw[0]

    first = totals()
    assert first[0] == report["rows_written"] > 0
    assert (first[1], first[2]) == (raw[0], raw[1])
    jobs.aggregate_metrics(event, FakeContext(function_name="aggregate"))  # re-run: same rows
    assert totals() == first


@pytest.mark.parametrize("base64_body", [False, True])
def test_bridge_passes_request_bodies(
    clean_db: Engine, runtime: Runtime, base64_body: bool
) -> None:
    """A POST body (plain or base64, as API Gateway may send it) reaches the app intact."""
    from alquimista_ops.auth.service import create_local_user

    with clean_db.begin() as conn:
        create_local_user(
            conn,
            email="ops@alquimista.ai",
            full_name="Ops",
            group="INTERNAL_SUPPORT",
            password="correct-horse-battery",
        )
    body = urlencode({"username": "ops@alquimista.ai", "password": "correct-horse-battery"})
    event = http_event("POST /auth/token", "/auth/token")
    event["headers"]["content-type"] = "application/x-www-form-urlencoded"
    event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    event["isBase64Encoded"] = base64_body
    response = lambda_runtime.get_bridge()(event, FakeContext())
    assert response["statusCode"] == 200, response["body"]
    principal = runtime.verifier.verify(lambda_json(response)["id_token"])
    assert principal.email == "ops@alquimista.ai"
    assert principal.groups == ("INTERNAL_SUPPORT",)

    event["body"] = (
        body.replace("correct", "wrong")
        if not base64_body
        else base64.b64encode(body.replace("correct", "wrong").encode()).decode()
    )
    refused = lambda_runtime.get_bridge()(event, FakeContext())
    assert refused["statusCode"] == 401
    assert lambda_json(refused)["error"] == "INVALID_CREDENTIALS"


def _emf_blobs(text: str) -> list[dict[str, Any]]:
    blobs = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def _one(value: Any) -> float:
    """An EMF value: a number, or a list of the values recorded in one invocation."""
    if isinstance(value, list):
        assert len(value) == 1
        return float(value[0])
    return float(value)


def test_route_functions_emit_cloudwatch_metrics(
    clean_db: Engine, token_for: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """request count, latency and status class per route, and command outcomes by
    type, as CloudWatch embedded metrics (Powertools) in namespace AlquimistaOps."""
    from tests.commands_support import make_tenant

    tenant_id = make_tenant(clean_db).id
    token = token_for("TENANT_ADMIN", tenant_id)
    capsys.readouterr()
    event = http_event("GET /tenant/me", "/tenant/me", None, token)
    assert handlers.tenant_me(event, FakeContext())["statusCode"] == 200
    (blob,) = _emf_blobs(capsys.readouterr().out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "AlquimistaOps"
    assert sorted(directive["Dimensions"][0]) == ["route", "service"]
    assert blob["route"] == "tenant-me"
    assert blob["service"] == "operational-dashboard"
    assert _one(blob["Requests"]) == 1.0 and _one(blob["Status2xx"]) == 1.0
    assert 0 < _one(blob["Latency"]) < 60_000
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["Latency"] == "Milliseconds"

    admin = token_for("INTERNAL_ADMIN")
    body = {"command_type": "HEALTH_CHECK", "tenant_id": str(tenant_id)}
    created = handlers.create_command(
        http_event(
            "POST /internal/operations/commands",
            "/internal/operations/commands",
            None,
            admin,
            body=body,
        ),
        FakeContext(),
    )
    assert created["statusCode"] == 201
    refused = handlers.create_command(
        http_event(
            "POST /internal/operations/commands",
            "/internal/operations/commands",
            None,
            admin,
            body={"command_type": "NOPE"},
        ),
        FakeContext(),
    )
    assert refused["statusCode"] == 400
    blobs = _emf_blobs(capsys.readouterr().out)
    outcomes = [(b["command_type"], b["status"]) for b in blobs if "Commands" in b]
    assert outcomes == [("HEALTH_CHECK", "PENDING"), ("NOPE", "REFUSED")]
    statuses = sorted(k for b in blobs if "Requests" in b for k in b if k.startswith("Status"))
    assert statuses == ["Status2xx", "Status4xx"]
