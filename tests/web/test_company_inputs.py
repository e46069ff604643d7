"""Staff pages without a browser: any query value is answered without a 5xx, and an empty
platform (no tenants, no usage) renders every page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

STAFF_PAGES = ["/company", "/company/tenants", "/company/usage", "/company/billing"]


@pytest.fixture
def admin_client(client: TestClient, token_for: Any) -> Iterator[TestClient]:
    client.cookies.set("opdash_session", token_for("INTERNAL_ADMIN"))
    yield client
    client.cookies.clear()


def test_empty_platform_renders_every_staff_page(
    admin_client: TestClient, clean_db: Engine
) -> None:
    for path in STAFF_PAGES:
        response = admin_client.get(path)
        assert response.status_code == 200, path
    body = admin_client.get("/company").text
    assert "Sem dados do período anterior" in body  # no trend invented without a baseline
    assert "Nenhum incidente." in body
    assert "Nenhum cliente encontrado." in admin_client.get("/company/tenants").text
    missing = admin_client.get(f"/company/tenants/{uuid.uuid4()}")
    assert missing.status_code == 404


values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "-1", "0", "999999999999", "1e3", "all", "asc", "desc", "name"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    path=st.sampled_from([*STAFF_PAGES, "/company/tenants/{id}"]),
    params=st.dictionaries(
        st.sampled_from(
            ["q", "status", "plan", "segment", "sort", "order", "page", "per_page", "period", "tab"]
        ),
        values,
        max_size=5,
    ),
)
def test_any_query_value_is_answered_without_a_server_error(
    admin_client: TestClient, path: str, params: dict[str, str]
) -> None:
    url = path.replace("{id}", str(uuid.UUID(int=1)))
    response = admin_client.get(url, params=params)
    assert response.status_code in (200, 400, 404), (url, params, response.status_code)
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("ref", ["x", "1234", "00000000-0000-0000-0000-00000000000g", "%00"])
def test_malformed_tenant_id_is_a_400_page(admin_client: TestClient, ref: str) -> None:
    response = admin_client.get(f"/company/tenants/{ref}")
    assert response.status_code == 400
    assert "Endereço inválido." in response.text
