"""Authorization matrix: every read route x every group x own / other tenant x no token.

Each route is called first by the callers that may read it (so its answer is cached), then by
everyone else: authorization must run before a cached answer is served.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.core.schema import tenants
from alquimista_ops.demo.seed import SeedReport
from tests.conftest import auth

GROUPS = ("INTERNAL_ADMIN", "INTERNAL_SUPPORT", "TENANT_ADMIN", "TENANT_USER")

# route template -> kind: "tenant" (/tenant/*), "internal", "admin" (INTERNAL_ADMIN only)
ROUTES: list[tuple[str, str]] = [
    ("/tenant/me", "tenant"),
    ("/tenant/agents", "tenant"),
    ("/tenant/integrations", "tenant"),
    ("/tenant/usage", "tenant"),
    ("/tenant/incidents", "tenant"),
    ("/internal/tenants", "internal"),
    ("/internal/tenants/{target}", "internal"),
    ("/internal/tenants/{target}/agents", "internal"),
    ("/internal/usage/overview", "internal"),
    ("/internal/billing/overview", "admin"),
]


def expected(kind: str, group: str | None, own: bool) -> int:
    if group is None:
        return 401
    internal = group.startswith("INTERNAL")
    if kind == "tenant":
        return 200 if internal or own else 403
    if kind == "internal":
        return 200 if internal else 403
    return 200 if group == "INTERNAL_ADMIN" else 403


@pytest.fixture(scope="module")
def two_tenants(demo_data: SeedReport, engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    own = demo_data.demo_tenant_id
    assert own is not None
    with engine.connect() as conn:
        other = (
            conn.execute(
                sa.select(tenants.c.id)
                .where(tenants.c.id != own, tenants.c.status == "active")
                .order_by(tenants.c.id)
            )
            .scalars()
            .first()
        )
    assert other is not None
    return own, other


@pytest.mark.parametrize(("template", "kind"), ROUTES, ids=[r[0] for r in ROUTES])
def test_matrix(
    client: TestClient,
    token_for: Any,
    two_tenants: tuple[uuid.UUID, uuid.UUID],
    template: str,
    kind: str,
) -> None:
    own, other = two_tenants
    cases: list[tuple[str | None, bool]] = [(g, o) for g in GROUPS for o in (True, False)]
    cases.append((None, True))
    results = []
    for group, is_own in cases:
        target = own if is_own else other
        path = template.format(target=target)
        params: dict[str, str] = {}
        headers: dict[str, str] = {}
        if group is not None:
            tenant_claim = own if group.startswith("TENANT") else None
            headers = auth(token_for(group, tenant_claim))
            if kind == "tenant" and (group.startswith("INTERNAL") or not is_own):
                params["tenant_id"] = str(target)
        elif kind == "tenant":
            params["tenant_id"] = str(target)
        response = client.get(path, params=params, headers=headers)
        want = expected(kind, group, is_own)
        results.append((group, is_own, response.status_code, want))
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        if want != 200:
            assert set(body) == {"error", "message", "details"}, body
            assert "x-cache" not in response.headers
    wrong = [r for r in results if r[2] != r[3]]
    assert not wrong, wrong


def test_access_token_kind_works_too(
    client: TestClient, token_for: Any, demo_data: SeedReport
) -> None:
    token = token_for("INTERNAL_SUPPORT", kind="access")
    assert client.get("/internal/tenants", headers=auth(token)).status_code == 200
    assert client.get("/internal/billing/overview", headers=auth(token)).status_code == 403


def test_garbage_token_is_401(client: TestClient, demo_data: SeedReport) -> None:
    for path in ("/internal/tenants", "/internal/billing/overview", "/internal/usage/overview"):
        response = client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
        assert response.status_code == 401
        assert response.json()["error"] == "UNAUTHORIZED"
