"""Authorization matrix of the tenant routes, tenant scoping of every body, and input edges.

Every tenant route × every group × (own tenant, another tenant's id, no tenant id, no token).
For each 200, every UUID in the body must belong to the tenant that was read (checked against
the database).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.core.schema import GROUPS
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import build_runtime
from tests.conftest import SEED_TODAY, auth, make_settings

TENANT_ROUTES = (
    "/tenant/me",
    "/tenant/agents",
    "/tenant/integrations",
    "/tenant/usage",
    "/tenant/incidents",
)
SCENARIOS = ("own_tenant", "other_tenant", "no_tenant_id", "no_token")
# The seeded data ends at SEED_TODAY; read usage there so the check does not depend on the date.
ROUTE_PARAMS = {
    "/tenant/usage": {
        "from": (SEED_TODAY - timedelta(days=29)).isoformat(),
        "to": SEED_TODAY.isoformat(),
    }
}

# (group kind, scenario) -> expected status. Internal users read any tenant but must name it.
EXPECTED = {
    ("internal", "own_tenant"): 200,
    ("internal", "other_tenant"): 200,
    ("internal", "no_tenant_id"): 400,
    ("internal", "no_token"): 401,
    ("tenant", "own_tenant"): 200,
    ("tenant", "other_tenant"): 403,
    ("tenant", "no_tenant_id"): 200,
    ("tenant", "no_token"): 401,
}


class Tenants:
    def __init__(self, home: uuid.UUID, other: uuid.UUID) -> None:
        self.home = home
        self.other = other


@pytest.fixture(scope="module")
def cache_off_client(var_dir: Any, pg_database: str, engine: Engine) -> Iterator[TestClient]:
    """The app with the read cache off (same signing key as ``client``): the tenant's status is
    then checked on the answer's own connection (``auth.deps.TenantRead.status_checked``)."""
    settings = make_settings(var_dir, pg_database, CACHE_ENABLED="false")
    with TestClient(create_app(runtime=build_runtime(settings, engine))) as test_client:
        yield test_client


@pytest.fixture(params=["cache_on", "cache_off"])
def any_client(request: pytest.FixtureRequest, client: TestClient) -> TestClient:
    if request.param == "cache_off":
        off: TestClient = request.getfixturevalue("cache_off_client")
        return off
    return client


@pytest.fixture(scope="module")
def tenants_under_test(demo_data: SeedReport, engine: Engine) -> Tenants:
    """The demo tenant (home of the tenant tokens) and another active tenant with data."""
    assert demo_data.demo_tenant_id is not None
    with engine.connect() as conn:
        other = conn.execute(
            sa.text(
                """
                SELECT t.id FROM tenants t
                WHERE t.status = 'active' AND t.id <> :home
                  AND EXISTS (SELECT 1 FROM operational_events e WHERE e.tenant_id = t.id
                              AND e.severity IN ('warning', 'error', 'critical'))
                  AND EXISTS (SELECT 1 FROM tenant_integrations i WHERE i.tenant_id = t.id)
                  AND EXISTS (SELECT 1 FROM tenant_agents a WHERE a.tenant_id = t.id
                              AND a.status = 'active')
                ORDER BY t.name LIMIT 1
                """
            ).bindparams(sa.bindparam("home", type_=sa.Uuid())),
            {"home": demo_data.demo_tenant_id},
        ).scalar_one()
    return Tenants(demo_data.demo_tenant_id, uuid.UUID(str(other)))


def owned_ids(engine: Engine, tenant_id: uuid.UUID) -> set[str]:
    """Every id that belongs to the tenant: its own id and the ids of its rows."""
    queries = (
        "SELECT id FROM tenant_agents WHERE tenant_id = :t",
        "SELECT agent_id FROM tenant_agents WHERE tenant_id = :t",
        "SELECT id FROM tenant_integrations WHERE tenant_id = :t",
        "SELECT id FROM tenant_users WHERE tenant_id = :t",
        "SELECT id FROM operational_events WHERE tenant_id = :t",
    )
    ids = {str(tenant_id)}
    with engine.connect() as conn:
        for query in queries:
            statement = sa.text(query).bindparams(sa.bindparam("t", type_=sa.Uuid()))
            ids.update(str(v) for v in conn.execute(statement, {"t": tenant_id}).scalars())
    return ids


def uuids_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from uuids_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from uuids_in(item)
    elif isinstance(value, str):
        try:
            yield str(uuid.UUID(value))
        except ValueError:
            return


def request(
    client: TestClient,
    token_for: Any,
    route: str,
    group: str,
    scenario: str,
    tenants: Tenants,
) -> Any:
    internal = group.startswith("INTERNAL")
    params: dict[str, str] = dict(ROUTE_PARAMS.get(route, {}))
    if scenario == "own_tenant":
        params["tenant_id"] = str(tenants.home)
    elif scenario == "other_tenant":
        params["tenant_id"] = str(tenants.other)
    headers: dict[str, str] = {}
    if scenario != "no_token":
        token = token_for(group) if internal else token_for(group, tenants.home)
        headers = auth(token)
    return client.get(route, params=params, headers=headers)


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("route", TENANT_ROUTES)
def test_access_matrix(
    client: TestClient,
    engine: Engine,
    token_for: Any,
    tenants_under_test: Tenants,
    route: str,
    group: str,
    scenario: str,
) -> None:
    kind = "internal" if group.startswith("INTERNAL") else "tenant"
    expected = EXPECTED[(kind, scenario)]
    response = request(client, token_for, route, group, scenario, tenants_under_test)
    assert response.status_code == expected, response.text
    body = response.json()
    if expected != 200:
        assert set(body) == {"error", "message", "details"}
        return
    read = tenants_under_test.other if scenario == "other_tenant" else tenants_under_test.home
    allowed = owned_ids(engine, read)
    found = set(uuids_in(body))
    assert found, "the body names no ids at all"
    assert found <= allowed, f"ids of another tenant: {found - allowed}"
    if route == "/tenant/me":
        assert body["id"] == str(read)
    else:
        # The lists are not empty, so the ownership check above had something to check.
        key = {
            "/tenant/agents": "agents",
            "/tenant/integrations": "integrations",
            "/tenant/usage": "by_agent",
            "/tenant/incidents": "incidents",
        }[route]
        assert body[key], f"{route} returned no {key} for the tenant under test"


def test_suspended_tenant_is_403_for_its_users_only(
    any_client: TestClient,
    engine: Engine,
    runtime: Any,
    token_for: Any,
    tenants_under_test: Tenants,
) -> None:
    other = tenants_under_test.other
    with engine.begin() as conn:
        previous = conn.execute(
            sa.text("SELECT status FROM tenants WHERE id = :t").bindparams(
                sa.bindparam("t", type_=sa.Uuid())
            ),
            {"t": other},
        ).scalar_one()
        conn.execute(
            sa.text("UPDATE tenants SET status = 'suspended' WHERE id = :t").bindparams(
                sa.bindparam("t", type_=sa.Uuid())
            ),
            {"t": other},
        )
    runtime.cache.invalidate_tenant(other)  # a direct write: drop what the cache showed
    try:
        for route in TENANT_ROUTES:
            for group in ("TENANT_ADMIN", "TENANT_USER"):
                response = any_client.get(route, headers=auth(token_for(group, other)))
                assert response.status_code == 403, response.text
                assert response.json()["error"] == "TENANT_SUSPENDED"
            for group in ("INTERNAL_ADMIN", "INTERNAL_SUPPORT"):
                response = any_client.get(
                    route, params={"tenant_id": str(other)}, headers=auth(token_for(group))
                )
                assert response.status_code == 200, response.text
        me = any_client.get(
            "/tenant/me",
            params={"tenant_id": str(other)},
            headers=auth(token_for("INTERNAL_ADMIN")),
        )
        assert me.json()["status"] == "suspended"
    finally:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE tenants SET status = :s WHERE id = :t").bindparams(
                    sa.bindparam("t", type_=sa.Uuid())
                ),
                {"t": other, "s": previous},
            )
        runtime.cache.invalidate_tenant(other)


@pytest.mark.parametrize("route", TENANT_ROUTES)
def test_unknown_tenant(
    any_client: TestClient, demo_data: SeedReport, token_for: Any, route: str
) -> None:
    client = any_client
    missing = uuid.uuid4()
    for group in ("INTERNAL_ADMIN", "INTERNAL_SUPPORT"):
        response = client.get(
            route, params={"tenant_id": str(missing)}, headers=auth(token_for(group))
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "NOT_FOUND"
    # A tenant token naming a tenant that does not exist reads nothing.
    response = client.get(route, headers=auth(token_for("TENANT_ADMIN", missing)))
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("route", TENANT_ROUTES)
def test_tenant_group_without_tenant_claim_is_403(
    client: TestClient, demo_data: SeedReport, token_for: Any, route: str
) -> None:
    response = client.get(route, headers=auth(token_for("TENANT_USER")))
    assert response.status_code == 403
    assert response.json()["error"] == "NO_TENANT"


def test_integration_config_by_group(
    client: TestClient, token_for: Any, tenants_under_test: Tenants, engine: Engine
) -> None:
    home = tenants_under_test.home
    with engine.connect() as conn:
        configs = {
            str(row.id): row.config
            for row in conn.execute(
                sa.text("SELECT id, config FROM tenant_integrations WHERE tenant_id = :t")
                .bindparams(sa.bindparam("t", type_=sa.Uuid()))
                .columns(config=sa.JSON()),
                {"t": home},
            )
        }
    assert configs
    user = client.get("/tenant/integrations", headers=auth(token_for("TENANT_USER", home)))
    assert user.status_code == 200
    assert user.json()["integrations"]
    for item in user.json()["integrations"]:
        assert "config" not in item
    for group, params in (
        ("TENANT_ADMIN", {}),
        ("INTERNAL_ADMIN", {"tenant_id": str(home)}),
        ("INTERNAL_SUPPORT", {"tenant_id": str(home)}),
    ):
        tenant = home if group == "TENANT_ADMIN" else None
        response = client.get(
            "/tenant/integrations", params=params, headers=auth(token_for(group, tenant))
        )
        assert response.status_code == 200
        for item in response.json()["integrations"]:
            assert item["config"] == configs[item["id"]]


def test_credentials_never_leave_the_server(
    client: TestClient, token_for: Any, tenants_under_test: Tenants, engine: Engine
) -> None:
    with engine.connect() as conn:
        secrets = list(
            conn.execute(
                sa.text(
                    "SELECT credentials_encrypted FROM tenant_integrations "
                    "WHERE credentials_encrypted IS NOT NULL"
                )
            ).scalars()
        )
    assert secrets
    for group in GROUPS:
        for tenant in (tenants_under_test.home, tenants_under_test.other):
            internal = group.startswith("INTERNAL")
            params = {"tenant_id": str(tenant)} if internal else {}
            headers = auth(token_for(group) if internal else token_for(group, tenant))
            for route in TENANT_ROUTES:
                for extra in ({}, {"status": "error"}) if route.endswith("integrations") else ({},):
                    response = client.get(route, params={**params, **extra}, headers=headers)
                    assert response.status_code == 200
                    assert "credentials" not in response.text
                    assert not any(secret in response.text for secret in secrets)


def test_agent_of_another_tenant_is_404_on_usage(
    client: TestClient, token_for: Any, tenants_under_test: Tenants, engine: Engine
) -> None:
    home, other = tenants_under_test.home, tenants_under_test.other
    with engine.connect() as conn:
        home_agents = {
            str(v)
            for v in conn.execute(
                sa.text("SELECT agent_id FROM tenant_agents WHERE tenant_id = :t").bindparams(
                    sa.bindparam("t", type_=sa.Uuid())
                ),
                {"t": home},
            ).scalars()
        }
        foreign = [
            str(v)
            for v in conn.execute(
                sa.text("SELECT agent_id FROM tenant_agents WHERE tenant_id = :t").bindparams(
                    sa.bindparam("t", type_=sa.Uuid())
                ),
                {"t": other},
            ).scalars()
            if str(v) not in home_agents
        ]
    assert foreign and home_agents
    headers = auth(token_for("TENANT_ADMIN", home))
    for agent_id in (foreign[0], str(uuid.uuid4())):
        response = client.get("/tenant/usage", params={"agent_id": agent_id}, headers=headers)
        assert response.status_code == 404, response.text
        assert response.json()["details"] == {"field": "agent_id"}
    own = sorted(home_agents)[0]
    response = client.get("/tenant/usage", params={"agent_id": own}, headers=headers)
    assert response.status_code == 200
    assert {a["agent_id"] for a in response.json()["by_agent"]} <= {own}


# -- input edges: 400 with a JSON body naming the field -------------------------------------

BAD_INPUTS = [
    ("/tenant/me", {"tenant_id": "not-a-uuid"}, "tenant_id"),
    ("/tenant/agents", {"tenant_id": "1234"}, "tenant_id"),
    ("/tenant/agents", {"status": "deleted"}, "status"),
    ("/tenant/integrations", {"status": "broken"}, "status"),
    ("/tenant/integrations", {"type": "telepathy"}, "type"),
    ("/tenant/incidents", {"status": "closed"}, "status"),
    ("/tenant/incidents", {"severity": "info"}, "severity"),
    ("/tenant/incidents", {"severity": "catastrophic"}, "severity"),
    ("/tenant/incidents", {"limit": "201"}, "limit"),
    ("/tenant/incidents", {"limit": "-1"}, "limit"),
    ("/tenant/incidents", {"limit": "0"}, "limit"),
    ("/tenant/incidents", {"limit": "ten"}, "limit"),
    ("/tenant/incidents", {"offset": "-5"}, "offset"),
    ("/tenant/incidents", {"offset": "99999999999"}, "offset"),
    ("/tenant/usage", {"period": "1y"}, "period"),
    ("/tenant/usage", {"agent_id": "agent-1"}, "agent_id"),
    ("/tenant/usage", {"from": "2026-11-10", "to": "2026-11-01"}, "to"),
    ("/tenant/usage", {"from": "2025-01-01", "to": "2026-01-02"}, "to"),
    ("/tenant/usage", {"from": "2026-11-01"}, "to"),
    ("/tenant/usage", {"to": "2026-11-01"}, "from"),
    ("/tenant/usage", {"from": "2026-13-01", "to": "2026-11-02"}, "from"),
    ("/tenant/usage", {"from": "yesterday", "to": "2026-11-02"}, "from"),
    ("/tenant/usage", {"period": "7d", "from": "2026-11-01", "to": "2026-11-02"}, "period"),
]


@pytest.mark.parametrize(("route", "params", "field"), BAD_INPUTS)
def test_bad_input_is_400_naming_the_field(
    client: TestClient,
    token_for: Any,
    tenants_under_test: Tenants,
    route: str,
    params: dict[str, str],
    field: str,
) -> None:
    headers = auth(token_for("TENANT_ADMIN", tenants_under_test.home))
    response = client.get(route, params=params, headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "VALIDATION_ERROR"
    details = body["details"]
    fields = {d["field"] for d in details} if isinstance(details, list) else {details.get("field")}
    assert field in fields, body
    assert field in body["message"] or isinstance(details, dict)


def test_range_limits_are_inclusive(
    client: TestClient, token_for: Any, tenants_under_test: Tenants
) -> None:
    headers = auth(token_for("TENANT_ADMIN", tenants_under_test.home))
    full = client.get(
        "/tenant/usage", params={"from": "2025-11-29", "to": "2026-11-29"}, headers=headers
    )
    assert full.status_code == 200, full.text
    assert full.json()["period"]["days"] == 366
    assert len(full.json()["daily_data"]) == 366
    one = client.get(
        "/tenant/usage", params={"from": "2026-11-01", "to": "2026-11-01"}, headers=headers
    )
    assert one.status_code == 200
    assert one.json()["period"] == {
        "label": "custom",
        "from": "2026-11-01",
        "to": "2026-11-01",
        "days": 1,
    }
    top = client.get("/tenant/incidents", params={"limit": "200"}, headers=headers)
    assert top.status_code == 200
    assert top.json()["limit"] == 200


def test_error_bodies_are_json(
    client: TestClient, token_for: Any, tenants_under_test: Tenants
) -> None:
    headers = auth(token_for("TENANT_USER", tenants_under_test.home))
    response = client.get("/tenant/incidents", params={"limit": "5000"}, headers=headers)
    assert response.headers["content-type"].startswith("application/json")
    json.loads(response.text)
