"""Property: whatever the query string, a tenant route answers 200 or a JSON 4xx, never 500."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alquimista_ops.demo.seed import SeedReport
from tests.conftest import auth

ROUTES = (
    "/tenant/me",
    "/tenant/agents",
    "/tenant/integrations",
    "/tenant/usage",
    "/tenant/incidents",
)
PARAMS = ("tenant_id", "status", "type", "severity", "period", "from", "to", "agent_id", "limit",
          "offset")  # fmt: skip
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["7d", "30d", "all", "open", "active", "error", "critical", "whatsapp"]),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.dates().map(str),
    st.uuids().map(str),
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    route=st.sampled_from(ROUTES),
    group=st.sampled_from(["TENANT_ADMIN", "TENANT_USER", "INTERNAL_SUPPORT"]),
    params=st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=4),
)
def test_tenant_routes_never_fail_on_odd_input(
    client: TestClient,
    demo_data: SeedReport,
    token_for: Any,
    route: str,
    group: str,
    params: dict[str, str],
) -> None:
    tenant = demo_data.demo_tenant_id if group.startswith("TENANT") else None
    response = client.get(route, params=params, headers=auth(token_for(group, tenant)))
    assert response.status_code in {200, 400, 403, 404}, (response.status_code, response.text)
    body = response.json()
    if response.status_code != 200:
        assert set(body) == {"error", "message", "details"}
