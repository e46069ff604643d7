"""The staff area (/company) in a real browser: menus, guards, tenants list, tenant detail,
usage and billing figures against the API, the operations form with a live worker."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alquimista_ops.core.schema import tenants
from alquimista_ops.core.settings import Settings
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.web import i18n
from tests.conftest import auth
from tests.test_commands import make_worker
from tests.web.test_tenant_pages import TENANT_MENU, account

pytestmark = pytest.mark.usefixtures("demo_data")

ADMIN_MENU = [
    "/company",
    "/company/tenants",
    "/company/usage",
    "/company/billing",
    "/company/operations",
]
SUPPORT_MENU = [path for path in ADMIN_MENU if path != "/company/billing"]
STAFF_PAGES = ["/company", "/company/tenants", "/company/usage", "/company/operations"]


def pt_number(value: Any, digits: int = 0) -> str:
    return i18n.format_number("pt-BR", value, digits)


def pt_brl(value: Any) -> str:
    return i18n.format_brl("pt-BR", value)


def staff(web: Any, demo_data: SeedReport, group: str = "INTERNAL_ADMIN") -> Any:
    session = web()
    session.sign_in(*account(demo_data, group))
    return session


@pytest.mark.parametrize(
    ("group", "landing", "menu"),
    [
        ("INTERNAL_ADMIN", "/company", ADMIN_MENU),
        ("INTERNAL_SUPPORT", "/company", SUPPORT_MENU),
        ("TENANT_ADMIN", "/dashboard", TENANT_MENU),
        ("TENANT_USER", "/dashboard", TENANT_MENU),
    ],
)
def test_each_group_lands_on_its_home_with_its_menu(
    web: Any, demo_data: SeedReport, group: str, landing: str, menu: list[str]
) -> None:
    session = staff(web, demo_data, group)
    assert urlparse(session.page.url).path == landing
    assert session.menu() == menu
    assert session.page.locator("nav.menu a[aria-current=page]").get_attribute("href") == landing
    assert session.console_errors == []


def test_support_is_refused_on_billing_and_sees_no_money(web: Any, demo_data: SeedReport) -> None:
    session = staff(web, demo_data, "INTERNAL_SUPPORT")
    assert session.page.locator("#kpi-requests").is_visible()
    assert session.page.locator("#kpi-mrr").count() == 0
    assert session.page.locator("#revenue-trend").count() == 0
    assert session.page.locator("#success-trend-canvas").is_visible()
    assert "R$" not in session.page.locator("main").inner_text()
    response = session.goto("/company/billing")
    assert response.status == 403
    assert "Você não tem acesso" in session.page.content()


def test_tenant_user_is_refused_on_every_staff_url(web: Any, demo_data: SeedReport) -> None:
    session = web()
    session.sign_in(*account(demo_data, "TENANT_ADMIN"))
    paths = [*ADMIN_MENU, f"/company/tenants/{demo_data.demo_tenant_id}", "/company/tenants/x"]
    for path in paths:
        response = session.goto(path)
        assert response.status == 403, path
        assert "Você não tem acesso" in session.page.content(), path


def test_landing_kpis_and_trends_come_from_the_api(
    web: Any, demo_data: SeedReport, client: Any, token_for: Any, engine: Engine
) -> None:
    session = staff(web, demo_data)
    headers = auth(token_for("INTERNAL_ADMIN"))
    usage = client.get("/internal/usage/overview?period=30d", headers=headers).json()
    billing = client.get("/internal/billing/overview?period=30d", headers=headers).json()
    card = session.page.locator("#kpi-requests")
    current = usage["global_stats"]["total_requests"]
    assert card.locator(".big").inner_text() == pt_number(current)
    # the trend compares with the 30 days before, read from the API as a date range
    start = date.fromisoformat(usage["period"]["from"])
    before = client.get(
        "/internal/usage/overview",
        params={"from": str(start - timedelta(days=30)), "to": str(start - timedelta(days=1))},
        headers=headers,
    ).json()["global_stats"]["total_requests"]
    change = round((current - before) * 100.0 / before, 1)
    assert f"{'+' if change > 0 else ''}{pt_number(change, 1)}% vs. período anterior" in (
        card.inner_text().replace("\n", " ")
    )
    midnight = datetime.combine(start, time(), UTC)
    with engine.connect() as conn:
        created, created_before = conn.execute(
            sa.select(
                sa.func.count().filter(tenants.c.created_at >= midnight),
                sa.func.count().filter(
                    tenants.c.created_at >= midnight - timedelta(days=30),
                    tenants.c.created_at < midnight,
                ),
            )
        ).one()
    assert session.page.locator("#kpi-new-tenants").inner_text() == (
        f"+{created} novos no período (anterior: {created_before})"
    )
    with engine.connect() as conn:
        still_open, critical_open = conn.execute(
            sa.text(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE severity = 'critical')"
                " FROM operational_events"
                " WHERE severity IN ('warning', 'error', 'critical') AND resolved_at IS NULL"
            )
        ).one()
    assert still_open > 0
    assert session.page.locator("#incident-counters").inner_text() == (
        f"{pt_number(still_open)} abertos, {pt_number(critical_open)} críticos abertos"
    )
    mrr = session.page.locator("#kpi-mrr .big").inner_text()
    assert mrr == pt_brl(billing["total_mrr"])
    assert session.page.locator("#usage-trend-canvas").is_visible()
    assert session.page.locator("#revenue-trend-canvas").is_visible()
    top = session.page.locator("section:has(h2:text('Clientes com mais uso')) tbody tr")
    assert top.count() == min(5, len(usage["top_tenants"]))
    assert top.first.locator("a").inner_text() == usage["top_tenants"][0]["name"]


def _tenant_rows(session: Any) -> list[str]:
    return session.page.locator("#tenants-table tbody th[scope=row]").all_inner_texts()


def test_tenants_search_by_accentless_name_and_by_cnpj(
    web: Any, demo_data: SeedReport, engine: Engine
) -> None:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tenants.c.name, tenants.c.cnpj)).all()
    accented = next(r for r in rows if re.search(r"[À-ÿ]", r.name))
    word = next(w for w in accented.name.split() if re.search(r"[À-ÿ]", w))
    folded = i18n_fold(word)
    session = staff(web, demo_data)
    session.goto("/company/tenants")
    session.page.fill("#q", folded)
    session.page.click("form[role=search] button[type=submit]")
    session.page.wait_for_load_state("networkidle")
    assert parse_qs(urlparse(session.page.url).query)["q"] == [folded]
    assert accented.name in _tenant_rows(session)
    # by CNPJ digits (a fragment, without punctuation)
    target = rows[0]
    session.page.fill("#q", target.cnpj[2:10])
    session.page.click("form[role=search] button[type=submit]")
    session.page.wait_for_load_state("networkidle")
    assert target.name in _tenant_rows(session)
    assert all(
        target.cnpj[2:10] in re.sub(r"\D", "", cnpj)
        for cnpj in session.page.locator(
            "#tenants-table tbody td.nowrap:nth-child(2)"
        ).all_inner_texts()
    )


def i18n_fold(text: str) -> str:
    from alquimista_ops.core.text import fold

    return fold(text)


def test_tenants_pagination_and_sorting_keep_state_in_the_url(
    web: Any, demo_data: SeedReport, engine: Engine
) -> None:
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(tenants)).scalar_one()
    session = staff(web, demo_data)
    session.goto("/company/tenants?status=all&per_page=3")
    first = _tenant_rows(session)
    assert len(first) == 3
    assert session.page.locator("#result-count").inner_text().startswith(str(total))
    session.page.click("nav.pager a[rel=next]")
    session.page.wait_for_load_state("networkidle")
    query = parse_qs(urlparse(session.page.url).query)
    assert query["page"] == ["2"] and query["per_page"] == ["3"] and query["status"] == ["all"]
    second = _tenant_rows(session)
    assert second and not set(second) & set(first)
    shared = session.page.url
    other = web()  # a shared link shows the same page in another browser session
    other.sign_in(*account(demo_data, "INTERNAL_SUPPORT"))
    other.goto(shared.replace(other.base_url, ""))
    assert _tenant_rows(other) == second
    # sorting by MRR through the column header, then reversing it
    session.page.click("#tenants-table thead a:has-text('MRR estimado')")
    session.page.wait_for_load_state("networkidle")
    query = parse_qs(urlparse(session.page.url).query)
    assert query["sort"] == ["mrr_estimate"] and query["order"] == ["asc"]
    assert "page" not in query and query["per_page"] == ["3"]
    header = session.page.locator("#tenants-table thead th[aria-sort]")
    assert header.get_attribute("aria-sort") == "ascending"
    with engine.connect() as conn:
        expected = (
            conn.execute(
                sa.select(tenants.c.name).order_by(tenants.c.mrr_estimate, tenants.c.id).limit(3)
            )
            .scalars()
            .all()
        )
    assert _tenant_rows(session) == expected
    session.page.click("#tenants-table thead a:has-text('MRR estimado')")
    session.page.wait_for_load_state("networkidle")
    assert parse_qs(urlparse(session.page.url).query)["order"] == ["desc"]
    assert header.get_attribute("aria-sort") == "descending"
    session.page.reload()
    assert parse_qs(urlparse(session.page.url).query)["order"] == ["desc"]
    assert session.console_errors == []


def test_tenants_filters_and_bad_values(web: Any, demo_data: SeedReport, engine: Engine) -> None:
    with engine.connect() as conn:
        plan = conn.execute(sa.select(tenants.c.plan).limit(1)).scalar_one()
        names = (
            conn.execute(sa.select(tenants.c.name).where(tenants.c.plan == plan)).scalars().all()
        )
    session = staff(web, demo_data)
    session.goto("/company/tenants")
    session.page.select_option("#plan", plan)
    session.page.click("form[role=search] button[type=submit]")
    session.page.wait_for_load_state("networkidle")
    assert sorted(_tenant_rows(session)) == sorted(names)
    assert session.page.locator("#plan").input_value() == plan
    response = session.goto("/company/tenants?sort=drop&order=x&page=abc&per_page=-4&status=zz")
    assert response.status == 200
    assert session.page.locator("#status").input_value() == "all"
    response = session.goto("/company/tenants?q=%3Cscript%3E")
    assert response.status == 400
    assert session.page.get_by_role("alert").is_visible()
    response = session.goto("/company/tenants?page=999")
    assert response.status == 200
    assert session.page.locator("text=Nenhum cliente encontrado.").is_visible()


def test_tenant_detail_tabs(web: Any, demo_data: SeedReport, client: Any, token_for: Any) -> None:
    tenant_id = demo_data.demo_tenant_id
    detail = client.get(
        f"/internal/tenants/{tenant_id}", headers=auth(token_for("INTERNAL_SUPPORT"))
    ).json()
    session = staff(web, demo_data, "INTERNAL_SUPPORT")
    session.goto("/company/tenants")
    session.page.click(f"a[href='/company/tenants/{tenant_id}']")
    session.page.wait_for_load_state("networkidle")
    assert session.page.locator("h1").inner_text() == detail["tenant"]["name"]
    tabs = session.page.locator("nav.tabs a")
    assert tabs.count() == 5
    assert session.page.locator("nav.tabs a[aria-current=page]").inner_text() == "Resumo"
    for label, tab, rows in [
        ("Usuários", "users", len(detail["users"])),
        ("Agentes", "agents", len(detail["agents"])),
        ("Integrações", "integrations", len(detail["integrations"])),
    ]:
        session.page.click(f"nav.tabs a:has-text('{label}')")
        session.page.wait_for_load_state("networkidle")
        assert session.page.url.endswith(f"?tab={tab}")
        assert session.page.locator("nav.tabs a[aria-current=page]").inner_text().startswith(label)
        assert session.page.locator("#tab-heading").inner_text() == label
        assert session.page.locator(".tab-panel tbody tr").count() == max(rows, 1)
    session.page.click("nav.tabs a:has-text('Incidentes')")
    session.page.wait_for_load_state("networkidle")
    assert session.page.locator(".tab-panel .card").count() == 3
    session.page.click("text=Abrir painel do cliente")
    session.page.wait_for_load_state("networkidle")
    assert session.page.url.endswith(f"/dashboard?tenant_id={tenant_id}")
    assert session.page.locator("h1").inner_text() == detail["tenant"]["name"]
    assert session.console_errors == []


def test_tenant_detail_unknown_and_malformed_ids(web: Any, demo_data: SeedReport) -> None:
    session = staff(web, demo_data)
    response = session.goto("/company/tenants/00000000-0000-4000-8000-000000000000")
    assert response.status == 404
    assert "Página não encontrada" in session.page.content()
    response = session.goto("/company/tenants/not-a-uuid")
    assert response.status == 400
    response = session.goto(f"/company/tenants/{demo_data.demo_tenant_id}?tab=nope")
    assert response.status == 200
    assert session.page.locator("nav.tabs a[aria-current=page]").inner_text() == "Resumo"


@pytest.mark.parametrize("period", ["7d", "90d"])
def test_usage_page_figures_equal_the_api(
    web: Any, demo_data: SeedReport, client: Any, token_for: Any, period: str
) -> None:
    api = client.get(
        f"/internal/usage/overview?period={period}", headers=auth(token_for("INTERNAL_SUPPORT"))
    ).json()
    stats = api["global_stats"]
    session = staff(web, demo_data, "INTERNAL_SUPPORT")
    session.goto("/company/usage")
    session.page.select_option("#period", period)  # auto-submits
    session.page.wait_for_url(f"**/company/usage?period={period}")
    session.page.wait_for_load_state("networkidle")
    big = {
        card: session.page.locator(f"#{card} .big").inner_text()
        for card in ("u-requests", "u-success", "u-response", "u-tenants", "u-agents", "u-tokens")
    }
    assert big["u-requests"] == pt_number(stats["total_requests"])
    assert big["u-success"] == i18n.format_percent("pt-BR", stats["global_success_rate"])
    assert big["u-response"] == pt_number(stats["avg_response_time_ms"]) + " ms"
    assert big["u-tenants"] == pt_number(stats["active_tenants"])
    assert big["u-agents"] == pt_number(stats["total_agents_deployed"])
    assert big["u-tokens"] == pt_number(stats["total_tokens"])
    names = session.page.locator("#top-tenants tbody th").all_inner_texts()
    assert names == [row["name"] for row in api["top_tenants"]]
    requests = session.page.locator("#top-agents tbody td:nth-child(5)").all_inner_texts()
    assert requests == [pt_number(row["total_requests"]) for row in api["top_agents"]]
    chart = session.page.locator("#usage-trend").text_content()
    assert f'"data": {[d["total_requests"] for d in api["daily_trends"]]}'.replace(
        " ", ""
    ) in chart.replace(" ", "")
    assert session.console_errors == []


def test_billing_page_figures_equal_the_api(
    web: Any, demo_data: SeedReport, client: Any, token_for: Any
) -> None:
    api = client.get(
        "/internal/billing/overview?period=90d", headers=auth(token_for("INTERNAL_ADMIN"))
    ).json()
    session = staff(web, demo_data)
    response = session.goto("/company/billing?period=90d")
    assert response.status == 200
    for card, key in [
        ("b-mrr", "total_mrr"),
        ("b-arr", "arr"),
        ("b-avg", "avg_mrr_per_tenant"),
        ("b-new", "new_mrr_this_period"),
        ("b-churned", "churned_mrr_this_period"),
        ("b-net", "net_new_mrr_this_period"),
    ]:
        assert session.page.locator(f"#{card} .big").inner_text() == pt_brl(api[key]), card
    plan_mrr = session.page.locator("#by-plan tbody td:nth-child(3)").all_inner_texts()
    assert plan_mrr == [pt_brl(row["mrr"]) for row in api["by_plan"]]
    segment_mrr = session.page.locator("#by-segment tbody td:nth-child(3)").all_inner_texts()
    assert segment_mrr == [pt_brl(row["mrr"]) for row in api["by_segment"]]
    for canvas in ("revenue-trend", "mrr-by-plan", "mrr-by-segment"):
        assert session.page.locator(f"#{canvas}-canvas").is_visible()
    assert session.console_errors == []


def test_every_staff_page_renders_without_console_errors(web: Any, demo_data: SeedReport) -> None:
    tenant = demo_data.demo_tenant_id
    pages = [
        *ADMIN_MENU,
        "/company?period=7d",
        "/company/usage?period=90d",
        "/company/billing?period=7d",
        "/company/tenants?status=active&sort=created_at&order=desc",
        *[
            f"/company/tenants/{tenant}?tab={tab}"
            for tab in ("overview", "users", "agents", "integrations", "incidents")
        ],
    ]
    session = staff(web, demo_data)
    for path in pages:
        response = session.goto(path)
        assert response.status == 200, path
        assert session.page.locator("h1").count() == 1, path
    assert session.console_errors == []


def test_language_switch_on_a_staff_page(web: Any, demo_data: SeedReport) -> None:
    session = staff(web, demo_data)
    session.goto("/company/tenants?status=all&per_page=3")
    assert session.page.locator("h1").inner_text() == "Clientes"
    session.page.click("text=English")
    session.page.wait_for_load_state("networkidle")
    assert session.page.locator("h1").inner_text() == "Tenants"
    assert session.page.url.endswith("/company/tenants?status=all&per_page=3")
    assert session.page.locator("html").get_attribute("lang") == "en"
    session.goto("/company/billing")
    assert session.page.locator("h1").inner_text() == "Billing"
    assert "MRR by plan" in session.page.locator("main").inner_text()
    session.page.click("text=Português")
    session.page.wait_for_load_state("networkidle")
    assert session.page.locator("h1").inner_text() == "Faturamento"


def test_command_from_the_form_reaches_success_on_screen(
    web: Any, demo_data: SeedReport, engine: Engine, settings: Settings
) -> None:
    worker = make_worker(engine, settings)
    worker.start()
    try:
        session = staff(web, demo_data)
        session.goto("/company/operations")
        session.page.select_option("#command_type", "HEALTH_CHECK")
        assert (
            session.page.locator("#command-description").inner_text().startswith("Banco de dados")
        )
        session.page.click("#command-form button[type=submit]")
        message = session.page.locator("#form-message.notice")
        message.wait_for(timeout=20_000)  # the API accepted the command
        assert message.inner_text() == "Comando enviado."
        row = session.page.locator("#command-history tbody tr").first
        badge = row.locator("td.status .badge-SUCCESS")
        badge.wait_for(timeout=45_000)
        assert badge.inner_text() == "Sucesso"
        assert "status" in row.locator("td.result").inner_text()
        assert session.console_errors == []
    finally:
        worker.stop(timeout=10)


@pytest.mark.parametrize("path", ["/company", "/company/tenants", "/company/usage"])
def test_staff_pages_fit_a_phone(
    browser: Any, live_server: str, demo_data: SeedReport, path: str
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(live_server + "/login?next=" + path)
    email, password = account(demo_data, "INTERNAL_ADMIN")
    page.fill("#username", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert urlparse(page.url).path == path
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, path
    assert page.locator("nav.menu a").first.is_visible()
    context.close()
