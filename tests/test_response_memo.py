"""Cached reads answered before routing (core.response_memo): same answer and headers as the
route gives, per token and URL, never past the token's validity or an invalidation, and still
counted, logged and rate limited."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.core.response_memo import ResponseMemoMiddleware
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime, build_runtime
from tests.conftest import auth, issue_token, make_settings
from tests.test_observability import scrape, value


def _app(tmp_path: Path, pg_database: str, engine: Engine, **extra: str) -> tuple[Any, Runtime]:
    settings = make_settings(tmp_path, pg_database, **extra)
    runtime = build_runtime(settings, engine)
    return create_app(runtime=runtime), runtime


def test_a_remembered_answer_is_the_routes_answer_with_fresh_request_headers(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    app, runtime = _app(tmp_path, pg_database, engine)
    user = auth(issue_token(runtime, "TENANT_USER", demo_data.demo_tenant_id))
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    with TestClient(app) as client:
        before = scrape(client, admin)
        responses = [client.get("/tenant/me", headers=user) for _ in range(4)]
        after = scrape(client, admin)
    assert [r.status_code for r in responses] == [200] * 4
    assert [r.headers["x-cache"] for r in responses] == ["MISS", "HIT", "HIT", "HIT"]
    assert len({r.content for r in responses}) == 1
    assert responses[0].json()["id"] == str(demo_data.demo_tenant_id)
    assert len({r.headers["x-request-id"] for r in responses}) == 4
    for response in responses[1:]:
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == responses[0].headers["cache-control"]
        assert response.headers.get_list("x-request-id") == [response.headers["x-request-id"]]
    # every request is counted under its route, the remembered ones too
    labels = {"method": "GET", "route": "/tenant/me", "status": "200"}
    name = "opdash_http_requests_total"
    assert value(after, name, **labels) - value(before, name, **labels) == 4


def test_each_token_and_url_has_its_own_answer(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    app, runtime = _app(tmp_path, pg_database, engine)
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    with TestClient(app) as client:
        listing = client.get("/internal/tenants?limit=2", headers=admin).json()["tenants"]
        first, second = (uuid.UUID(t["id"]) for t in listing)
        one = auth(issue_token(runtime, "TENANT_USER", first))
        two = auth(issue_token(runtime, "TENANT_USER", second))
        for _ in range(3):
            assert client.get("/tenant/me", headers=one).json()["id"] == str(first)
            assert client.get("/tenant/me", headers=two).json()["id"] == str(second)
            for tenant in (first, second):
                answer = client.get(f"/tenant/me?tenant_id={tenant}", headers=admin)
                assert answer.json()["id"] == str(tenant)
        # a tenant user asking for another tenant is refused every time, never remembered
        for _ in range(2):
            refused = client.get(f"/tenant/me?tenant_id={second}", headers=one)
            assert refused.status_code == 403


def test_an_expired_token_is_never_answered_from_memory(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    app, runtime = _app(tmp_path, pg_database, engine, TOKEN_TTL_SECONDS="2")
    user = auth(issue_token(runtime, "TENANT_USER", demo_data.demo_tenant_id))
    with TestClient(app) as client:
        assert [client.get("/tenant/me", headers=user).status_code for _ in range(3)] == [200] * 3
        time.sleep(2.5)
        expired = client.get("/tenant/me", headers=user)
    assert expired.status_code == 401


def test_a_write_is_seen_at_once_through_the_remembered_url(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    app, runtime = _app(tmp_path, pg_database, engine)
    user = auth(issue_token(runtime, "TENANT_USER", demo_data.demo_tenant_id))
    with TestClient(app) as client:
        for _ in range(2):
            first = client.get("/tenant/me", headers=user).json()
        # another process (a worker) changes the tenant and invalidates it
        other = build_runtime(runtime.settings, engine)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "UPDATE tenants SET name = name || ' (renomeada)' WHERE id = %s",
                    (str(demo_data.demo_tenant_id),),
                )
            other.cache.invalidate_tenant(demo_data.demo_tenant_id)
        finally:
            other.close()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            now = client.get("/tenant/me", headers=user).json()
            if now["name"] != first["name"]:
                break
            time.sleep(0.01)
    assert now["name"] == first["name"] + " (renomeada)"


def _memo_of(app: Any) -> ResponseMemoMiddleware:
    layer = app.middleware_stack
    while not isinstance(layer, ResponseMemoMiddleware):
        layer = layer.app
    return layer


def test_remembered_answers_do_not_outlive_their_local_copies(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    app, runtime = _app(tmp_path, pg_database, engine, CACHE_LOCAL_SECONDS="0.5")
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    with TestClient(app) as client:
        # the first request verifies the token (only verified tokens are remembered)
        assert client.get("/internal/tenants?limit=1", headers=admin).status_code == 200
        time.sleep(0.6)
        for offset in range(12):  # distinct URLs, each remembered once
            url = f"/internal/tenants?status=all&limit=1&offset={offset}"
            assert client.get(url, headers=admin).status_code == 200
        memo = _memo_of(app)
        assert len(memo) == 12
        time.sleep(0.6)  # their local copies expire, and so do they ...
        assert client.get("/internal/tenants?limit=1", headers=admin).status_code == 200
        assert len(memo) == 1  # ... dropped as soon as another answer is remembered
