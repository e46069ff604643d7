"""The tenant area and sign-in, in a real browser."""

from __future__ import annotations

import json
from typing import Any

import pytest

from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.web import i18n

pytestmark = pytest.mark.usefixtures("demo_data")

TENANT_MENU = [
    "/dashboard",
    "/dashboard/agents",
    "/dashboard/usage",
    "/dashboard/integrations",
    "/dashboard/support",
]


def account(report: SeedReport, group: str) -> tuple[str, str]:
    for account_group, email, password in report.accounts:
        if account_group == group:
            return email, password
    raise AssertionError(f"no demo account for {group}")


@pytest.mark.parametrize("group", ["TENANT_ADMIN", "TENANT_USER"])
def test_tenant_user_lands_on_dashboard_with_tenant_menu(
    web: Any, demo_data: SeedReport, group: str
) -> None:
    session = web()
    session.sign_in(*account(demo_data, group))
    assert session.page.url.endswith("/dashboard")
    assert session.menu() == TENANT_MENU
    assert session.page.locator("h1").inner_text()  # the tenant's name
    assert session.console_errors == []


def test_unauthenticated_page_redirects_to_sign_in_and_back(
    web: Any, demo_data: SeedReport
) -> None:
    session = web()
    session.goto("/dashboard/usage?period=7d")
    assert "/login?next=" in session.page.url
    session.page.fill("#username", account(demo_data, "TENANT_USER")[0])
    session.page.fill("#password", account(demo_data, "TENANT_USER")[1])
    session.page.click("button[type=submit]")
    session.page.wait_for_load_state("networkidle")
    assert session.page.url.endswith("/dashboard/usage?period=7d")


def test_wrong_password_shows_error(web: Any, demo_data: SeedReport) -> None:
    session = web()
    session.goto("/login")
    session.page.fill("#username", account(demo_data, "TENANT_USER")[0])
    session.page.fill("#password", "not-the-password")
    with session.page.expect_response(lambda r: r.url.endswith("/login")) as response:
        session.page.click("button[type=submit]")
    assert response.value.status == 401
    assert session.page.get_by_role("alert").inner_text() == "E-mail ou senha incorretos."


def test_tenant_user_is_refused_on_staff_pages(web: Any, demo_data: SeedReport) -> None:
    session = web()
    session.sign_in(*account(demo_data, "TENANT_USER"))
    for path in ("/company", "/company/tenants", "/company/billing", "/company/operations"):
        response = session.goto(path)
        assert response.status == 403, path
        assert "Você não tem acesso" in session.page.content()


def test_language_switch_to_english_and_back(web: Any, demo_data: SeedReport) -> None:
    session = web()
    session.sign_in(*account(demo_data, "TENANT_ADMIN"))
    session.goto("/dashboard/agents")
    assert session.page.locator("h1").inner_text() == "Agentes"
    session.page.click("text=English")
    session.page.wait_for_load_state("networkidle")
    assert session.page.url.endswith("/dashboard/agents")
    assert session.page.locator("h1").inner_text() == "Agents"
    assert session.page.locator("html").get_attribute("lang") == "en"
    session.goto("/dashboard/usage")  # the choice persists
    assert session.page.locator("h1").inner_text() == "Usage"
    session.page.click("text=Português")
    session.page.wait_for_load_state("networkidle")
    assert session.page.locator("h1").inner_text() == "Uso"


def test_tenant_pages_render_without_console_errors(web: Any, demo_data: SeedReport) -> None:
    session = web()
    session.sign_in(*account(demo_data, "TENANT_ADMIN"))
    for path in [*TENANT_MENU, "/dashboard/usage?period=7d", "/dashboard/support?status=open"]:
        response = session.goto(path)
        assert response.status == 200, path
    assert session.console_errors == []


def test_usage_figures_on_page_match_the_api(
    web: Any, demo_data: SeedReport, client: Any, token_for: Any
) -> None:
    session = web()
    session.sign_in(*account(demo_data, "TENANT_ADMIN"))
    session.goto("/dashboard/usage?period=30d")
    token = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)
    api = client.get(
        "/tenant/usage?period=30d", headers={"Authorization": f"Bearer {token}"}
    ).json()
    total = session.page.locator(".card .big").first.inner_text()
    assert total == f"{api['summary']['total_requests']:,}".replace(",", ".")
    rows = session.page.locator("table tbody tr")
    assert rows.count() == len(api["by_agent"])


def test_overview_usage_figures_match_the_api(
    web: Any, demo_data: SeedReport, client: Any, token_for: Any
) -> None:
    """The overview's success-rate card and its daily chart are the API's figures (the page
    reads the usage report without its per-agent part)."""
    session = web()
    session.sign_in(*account(demo_data, "TENANT_ADMIN"))
    session.goto("/dashboard?period=7d")
    token = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)
    api = client.get("/tenant/usage?period=7d", headers={"Authorization": f"Bearer {token}"}).json()
    assert api["summary"]["total_requests"] > 0
    success = session.page.locator(".card .big").nth(3).inner_text()
    assert success == i18n.format_percent("pt-BR", api["summary"]["success_rate"])
    chart = json.loads(session.page.locator("script#usage-trend").inner_text())
    assert chart["labels"] == [day["date"] for day in api["daily_data"]]
    requests, failed = (series["data"] for series in chart["series"])
    assert requests == [day["total_requests"] for day in api["daily_data"]]
    assert failed == [day["failed_requests"] for day in api["daily_data"]]


def test_sign_out_ends_the_session(web: Any, demo_data: SeedReport) -> None:
    session = web()
    session.sign_in(*account(demo_data, "TENANT_USER"))
    session.page.click("text=Sair")
    session.page.wait_for_load_state("networkidle")
    assert session.page.url.endswith("/login")
    session.goto("/dashboard")
    assert "/login" in session.page.url


def test_phone_layout_keeps_menu_usable(
    browser: Any, live_server: str, demo_data: SeedReport
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(live_server + "/login")
    page.fill("#username", account(demo_data, "TENANT_USER")[0])
    page.fill("#password", account(demo_data, "TENANT_USER")[1])
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # no horizontal scrolling of the whole page
    assert page.locator("nav.menu a").first.is_visible()
    context.close()
