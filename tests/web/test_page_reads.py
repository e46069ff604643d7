"""The pages' reads without a browser: through the test client with the app's lifespan (on
PostgreSQL the reads run on the event loop, ``core.deps.async_reads``), one ``read_db`` call per
page, the tenant scope resolved inside it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.core import deps
from alquimista_ops.core.schema import tenants
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.web import company_pages, pages

pytestmark = pytest.mark.usefixtures("demo_data")


@pytest.fixture
def read_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many ``read_db`` calls each page made."""
    calls: list[int] = []

    async def counted(engine: Any, fn: Any, *, other_io: bool = False) -> Any:
        calls.append(1)
        # the app's lifespan ran: on PostgreSQL the page reads on the event loop
        assert (deps._async_reader(engine) is not None) == (engine.dialect.name == "postgresql")
        return await deps.read_db(engine, fn, other_io=other_io)

    monkeypatch.setattr(pages, "read_db", counted)
    monkeypatch.setattr(company_pages, "read_db", counted)
    yield calls


@pytest.fixture
def as_user(client: TestClient, token_for: Any) -> Iterator[Any]:
    def sign_in(group: str, tenant_id: uuid.UUID | None = None) -> TestClient:
        client.cookies.clear()
        client.cookies.set("opdash_session", token_for(group, tenant_id))
        return client

    yield sign_in
    client.cookies.clear()


TENANT_PAGES = [
    "/dashboard",
    "/dashboard?period=7d",
    "/dashboard/agents?status=active",
    "/dashboard/usage?period=90d",
    "/dashboard/integrations",
    "/dashboard/support?status=open",
]


def test_tenant_pages_read_once(as_user: Any, demo_data: SeedReport, read_calls: list[int]) -> None:
    client = as_user("TENANT_ADMIN", demo_data.demo_tenant_id)
    for path in TENANT_PAGES:
        read_calls.clear()
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert read_calls == [1], path


def test_staff_pages_read_once(as_user: Any, demo_data: SeedReport, read_calls: list[int]) -> None:
    client = as_user("INTERNAL_ADMIN")
    tenant = demo_data.demo_tenant_id
    for path in (
        "/company",
        "/company/tenants",
        f"/company/tenants/{tenant}",
        f"/company/tenants/{tenant}?tab=agents",
        f"/company/tenants/{tenant}?tab=incidents",
        "/company/usage",
        "/company/billing",
        "/company/operations",
        f"/dashboard?tenant_id={tenant}",
    ):
        read_calls.clear()
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 200, path
        assert read_calls == [1], path
    # the menu links of a staff user on a tenant page carry the tenant
    assert (
        f'href="/company/usage?tenant_id={tenant}"'
        in client.get(f"/dashboard?tenant_id={tenant}").text
    )


def test_tenant_scope_refusals_are_pages(as_user: Any, demo_data: SeedReport) -> None:
    staff = as_user("INTERNAL_SUPPORT")
    missing = staff.get(f"/dashboard?tenant_id={uuid.uuid4()}")
    assert missing.status_code == 404
    assert "Página não encontrada." in missing.text
    assert staff.get("/dashboard/agents").status_code == 400  # staff must name the tenant

    stranger = as_user("TENANT_USER", uuid.uuid4())  # a tenant that does not exist
    refused = stranger.get("/dashboard")
    assert refused.status_code == 403
    assert "Você não tem acesso" in refused.text

    other = as_user("TENANT_USER", demo_data.demo_tenant_id)
    assert other.get(f"/dashboard?tenant_id={uuid.uuid4()}").status_code == 403
    assert other.get(f"/dashboard/usage?agent_id={uuid.uuid4()}").status_code == 404


def test_suspended_tenant_page(as_user: Any, engine: Engine, demo_data: SeedReport) -> None:
    tenant_id = demo_data.demo_tenant_id
    with engine.begin() as conn:
        status, name = conn.execute(
            sa.select(tenants.c.status, tenants.c.name).where(tenants.c.id == tenant_id)
        ).one()
        conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(status="suspended"))
    try:
        for path in ("/dashboard/agents", "/dashboard"):  # /dashboard: status of its tenant row
            response = as_user("TENANT_USER", tenant_id).get(path)
            assert response.status_code == 403, path
            assert "A conta da sua empresa está suspensa." in response.text
            assert str(name) not in response.text  # nothing of what was read is shown
        # staff still see a suspended tenant
        assert (
            as_user("INTERNAL_SUPPORT").get(f"/dashboard?tenant_id={tenant_id}").status_code == 200
        )
    finally:
        with engine.begin() as conn:
            conn.execute(tenants.update().where(tenants.c.id == tenant_id).values(status=status))


def test_overview_checks_the_status_read_with_the_tenant_row(
    as_user: Any, demo_data: SeedReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``/dashboard`` reads the tenant's row anyway: its status is checked from it, without
    the scope's own status statement (one round trip fewer); the other pages still read it."""
    from alquimista_ops.auth import deps as auth_deps

    statuses: list[uuid.UUID] = []
    real = auth_deps.tenant_status

    def counted(conn: Any, tenant_id: uuid.UUID) -> str | None:
        statuses.append(tenant_id)
        return real(conn, tenant_id)

    monkeypatch.setattr(auth_deps, "tenant_status", counted)
    client = as_user("TENANT_ADMIN", demo_data.demo_tenant_id)
    assert client.get("/dashboard").status_code == 200
    assert statuses == []
    assert client.get("/dashboard/agents").status_code == 200
    assert statuses == [demo_data.demo_tenant_id]


def test_pages_redirect_to_sign_in_and_keep_the_query(client: TestClient) -> None:
    client.cookies.clear()
    response = client.get("/company/tenants?status=active", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/company/tenants%3Fstatus%3Dactive"
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"


def test_home_sends_each_user_to_their_area(as_user: Any, demo_data: SeedReport) -> None:
    staff = as_user("INTERNAL_ADMIN")
    assert staff.get("/", follow_redirects=False).headers["location"] == "/company"
    tenant_user = as_user("TENANT_USER", demo_data.demo_tenant_id)
    assert tenant_user.get("/", follow_redirects=False).headers["location"] == "/dashboard"


def test_pages_with_compiled_translations_equal_the_plain_templates(
    client: TestClient, as_user: Any, demo_data: SeedReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every page, the sign-in form and an error page, in both languages: the same HTML from
    the language's templates (``t('key')`` translated when compiled) as from the plain ones."""
    tenant = demo_data.demo_tenant_id
    visits = [
        ("TENANT_ADMIN", tenant, [*TENANT_PAGES, "/company"]),  # /company: the error page
        (
            "INTERNAL_ADMIN",
            None,
            [
                "/company",
                "/company/tenants?search=a",
                f"/company/tenants/{tenant}",
                f"/company/tenants/{tenant}?tab=users",
                "/company/usage?period=7d",
                "/company/billing",
                "/company/operations",
                f"/dashboard?tenant_id={tenant}",
            ],
        ),
        (None, None, ["/login"]),
    ]
    pages_seen = 0
    for group, tenant_id, paths in visits:
        for language in ("pt-BR", "en"):
            for path in paths:
                if group:
                    as_user(group, tenant_id)
                else:
                    client.cookies.clear()
                client.cookies.set("opdash_lang", language)
                compiled = client.get(path, follow_redirects=False)
                with monkeypatch.context() as plain_templates:
                    plain_templates.setattr(pages, "TEMPLATES_BY_LANGUAGE", {})
                    plain = client.get(path, follow_redirects=False)
                assert compiled.status_code == plain.status_code, path
                assert compiled.headers["content-type"].startswith("text/html"), path
                assert compiled.text == plain.text, (language, path)
                pages_seen += 1
    assert pages_seen == 2 * (len(TENANT_PAGES) + 1 + 8 + 1)
