"""The pages' reads without a browser: through the test client with the app's lifespan (the
reads run on the event loop, ``core.reads``), each page's statements in one round trip, the
tenant scope resolved beside them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.auth.deps import TENANT_STATUS
from alquimista_ops.core.schema import tenants
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.web import pages
from tests.conftest import issue_token
from tests.reads_support import StatementLog, is_batch, logged_runtime, sends

pytestmark = pytest.mark.usefixtures("demo_data")


@pytest.fixture(scope="module")
def logged(
    var_dir: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> Iterator[tuple[TestClient, Any, StatementLog]]:
    """An app of its own whose read statements are logged (one per round trip)."""
    runtime, log = logged_runtime(var_dir, pg_database, engine)
    with TestClient(create_app(runtime=runtime)) as client:
        yield client, runtime, log
    runtime.close()


@pytest.fixture
def logged_as(logged: tuple[TestClient, Any, StatementLog]) -> Iterator[Any]:
    client, runtime, log = logged

    def sign_in(group: str, tenant_id: uuid.UUID | None = None) -> tuple[TestClient, StatementLog]:
        client.cookies.clear()
        client.cookies.set("opdash_session", issue_token(runtime, group, tenant_id))
        return client, log

    yield sign_in
    client.cookies.clear()


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
# pages whose reads are a gather inside a gather: the tenant's status beside services that
# gather their own statements (see test_nested_gathers_of_a_page_are_one_round_trip)
NESTED_GATHERS = ("/dashboard", "/dashboard?period=7d", "/dashboard/usage?period=90d")


def round_trips(client: TestClient, log: StatementLog, path: str) -> list[str]:
    log.clear()
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 200, (path, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")
    return log.statements


def test_tenant_pages_read_in_one_round_trip(logged_as: Any, demo_data: SeedReport) -> None:
    client, log = logged_as("TENANT_ADMIN", demo_data.demo_tenant_id)
    for path in TENANT_PAGES:
        sent = round_trips(client, log, path)
        if path in NESTED_GATHERS:
            assert 1 <= len(sent) <= 2, (path, sent)
        else:
            assert len(sent) == 1, (path, sent)
        assert sends(sent[0], TENANT_STATUS), path  # the status with the first statements


def test_staff_pages_read_in_one_round_trip(logged_as: Any, demo_data: SeedReport) -> None:
    client, log = logged_as("INTERNAL_ADMIN")
    tenant = demo_data.demo_tenant_id
    for path, expected in (
        ("/company", 1),
        ("/company?period=7d", 1),
        ("/company/tenants", 1),
        ("/company/tenants?q=cl%C3%ADnica&status=all", 1),
        (f"/company/tenants/{tenant}", 1),
        (f"/company/tenants/{tenant}?tab=agents", 1),
        (f"/company/tenants/{tenant}?tab=users", 1),
        # the tenant's scope (its status) first, then its incidents
        (f"/company/tenants/{tenant}?tab=incidents", 2),
        ("/company/usage", 1),
        ("/company/billing", 1),
        ("/company/operations", 1),
    ):
        sent = round_trips(client, log, path)
        assert len(sent) == expected, (path, sent)
        if path == "/company":  # eight statements, one round trip
            assert is_batch(sent[0]) and sent[0].count("array_agg(q.c0)") >= 8
    sent = round_trips(client, log, f"/dashboard?tenant_id={tenant}")
    assert 1 <= len(sent) <= 2  # NESTED_GATHERS
    # the menu links of a staff user on a tenant page carry the tenant
    assert (
        f'href="/company/usage?tenant_id={tenant}"'
        in client.get(f"/dashboard?tenant_id={tenant}").text
    )


def test_nested_gathers_of_a_page_are_one_round_trip(logged_as: Any, demo_data: SeedReport) -> None:
    client, log = logged_as("TENANT_ADMIN", demo_data.demo_tenant_id)
    sent = {path: len(round_trips(client, log, path)) for path in NESTED_GATHERS}
    assert sent == dict.fromkeys(NESTED_GATHERS, 1)


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
        for path in ("/dashboard/agents", "/dashboard"):
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


def test_the_status_is_read_with_the_pages_statements(
    logged_as: Any, demo_data: SeedReport
) -> None:
    """A tenant page reads the tenant's status beside its own statements, in the same round
    trip (not before them): one round trip, the status statement in it, for the tenant."""
    client, log = logged_as("TENANT_ADMIN", demo_data.demo_tenant_id)
    for path in ("/dashboard/agents", "/dashboard/integrations"):
        (sent,) = round_trips(client, log, path)
        assert is_batch(sent) and sends(sent, TENANT_STATUS), path
        (record,) = log.records
        assert demo_data.demo_tenant_id in record.args, path


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
