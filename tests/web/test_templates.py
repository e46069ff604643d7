"""The page template environment renders as a plain Jinja environment does."""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from alquimista_ops.web import i18n
from alquimista_ops.web.pages import (
    TEMPLATES_BY_LANGUAGE,
    PageEnvironment,
    badge,
    severity,
    templates,
)


def _both(source: str, **values: Any) -> tuple[str, str]:
    plain = jinja2.Environment(autoescape=True).from_string(source).render(**values)
    page = PageEnvironment(autoescape=True).from_string(source).render(**values)
    return plain, page


def test_dict_lookups_match_jinja() -> None:
    row = {"name": "<b>", "items": "an item", "missing": None}
    source = "{{ r.name }}|{{ r.items is callable }}|{{ r.nope is defined }}|{{ r.missing }}"
    plain, page = _both(source, r=row)
    assert page == plain == "&lt;b&gt;|True|False|None"


def test_calls_match_jinja() -> None:
    @jinja2.pass_context
    def who(context: Any) -> str:
        return str(context["name"])

    class Callable:
        @jinja2.pass_environment
        def __call__(self, environment: Any) -> str:
            return type(environment).__name__.replace("Page", "")

    def stops() -> str:
        raise StopIteration

    source = "{{ f(1, b=2) }}|{{ who() }}|{{ c() }}|{{ stops() is defined }}|{{ m() }}"
    values = {
        "f": lambda a, b: a + b,
        "who": who,
        "c": Callable(),
        "stops": stops,
        "m": lambda: Markup("<i>ok</i>"),
        "name": "x",
    }
    plain, page = _both(source, **values)
    assert page == plain == "3|x|Environment|False|<i>ok</i>"


def test_literal_translations_are_compiled_in() -> None:
    """``t('key')`` alone becomes its text when the language's templates are compiled; keys
    given as expressions, calls with values and another object's ``t`` stay calls. The output
    is the same as the plain environment's."""
    source = (
        "{{ t('nav.overview') }}|{{ t(key) }}|{{ t('pager.showing', start=1, end=2, total=3) }}"
        "|{{ [t('status.active'), t('plan.business')] | join(',') }}|{{ o.t('nav.usage') }}"
    )
    for language, env in TEMPLATES_BY_LANGUAGE.items():
        called: list[str] = []

        def t(key: str, called: list[str] = called, language: str = language, **kw: Any) -> str:
            called.append(key)
            return i18n.translate(language, key, **kw)

        class Other:
            def t(self, key: str) -> str:
                return f"<{key}>"

        values = {"t": t, "key": "nav.usage", "o": Other()}
        plain = templates.env.from_string(source).render(**values)
        assert called == [
            "nav.overview",
            "nav.usage",
            "pager.showing",
            "status.active",
            "plan.business",
        ]
        called.clear()
        compiled = env.env.from_string(source).render(**values)
        assert compiled == plain
        assert called == ["nav.usage", "pager.showing"], language
        assert plain.endswith("&lt;nav.usage&gt;")  # another object's ``t`` was called


def test_no_template_binds_another_t() -> None:
    """The compiled-in translations take every ``t`` as the page's own: no template may bind
    another (a macro's or call block's parameter, ``set``, a loop variable)."""
    env = templates.env
    for name in env.list_templates(extensions=["html"]):
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        tree = env.parse(source)
        bound = [n for n in tree.find_all(jinja2.nodes.Name) if n.name == "t" and n.ctx != "load"]
        assert not bound, f"{name} binds t"


def test_badges() -> None:
    def t(key: str, **kw: Any) -> str:
        return i18n.translate("en", key, **kw)

    assert badge(t, "active") == '<span class="badge badge-active">Active</span>'
    assert badge(t, "<x>") == '<span class="badge badge-&lt;x&gt;">&lt;x&gt;</span>'
    assert severity(t, "critical") == '<span class="badge sev-critical">Critical</span>'


def test_templates_are_compiled_once() -> None:
    assert templates.get_template("base.html") is templates.get_template("base.html")


def test_numbers_are_grouped_per_language() -> None:
    # the page tests format their expected figures with ``format_number``: this pins it
    cases = [
        (0, 0, "0", "0"),
        (999, 0, "999", "999"),
        (1000, 0, "1.000", "1,000"),
        (1234567.891, 2, "1.234.567,89", "1,234,567.89"),
        (-1234567.891, 0, "-1.234.568", "-1,234,568"),
        (-0.4, 0, "0", "0"),  # rounds to zero: no sign
        (12.5, 1, "12,5", "12.5"),
        (1e12, 0, "1.000.000.000.000", "1,000,000,000,000"),
    ]
    for value, digits, pt_br, en in cases:
        assert i18n.format_number("pt-BR", value, digits) == pt_br, value
        assert i18n.format_number("en", value, digits) == en, value
    assert i18n.format_number("pt-BR", None) == "—"
    assert i18n.format_brl("pt-BR", 2565.031) == "R$ 2.565,03"
    assert i18n.format_percent("en", 97.15) == "97.2%"


def test_templates_are_compiled_when_the_app_starts_outside_development() -> None:
    from types import SimpleNamespace

    from fastapi import FastAPI

    from alquimista_ops.web.setup import install_web

    names = templates.env.list_templates(extensions=["html"])
    for development, compiled in ((True, False), (False, True)):
        assert templates.env.cache is not None
        templates.env.cache.clear()
        app = FastAPI()
        app.state.runtime = SimpleNamespace(settings=SimpleNamespace(is_development=development))
        install_web(app)
        cached = {key[1] for key in templates.env.cache}
        assert (set(names) <= cached) is compiled, cached
    assert "company/usage.html" in names and "base.html" in names


def test_tenant_rows_escape_every_value() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from typing import cast

    from alquimista_ops.web.company_pages import tenant_rows
    from alquimista_ops.web.session import PageContext

    hostile = "<script>alert('x')</script>&"
    row = {
        "id": '1"><img>',
        "name": hostile,
        "cnpj": hostile,
        "segment": hostile,
        "plan": "starter",
        "status": hostile,
        "mrr_estimate": 1234.5,
        "created_at": datetime(2026, 11, 29, tzinfo=UTC),
        "active_agents": 2,
        "active_users": 1000,
        "requests_last_30_days": 1234567,
    }
    html = str(tenant_rows(cast(PageContext, SimpleNamespace(lang="pt-BR")), [row]))
    assert "<script" not in html and "<img" not in html
    # name, CNPJ, segment (an unknown key shows as itself), and the badge's class and label
    assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;") == 5
    assert 'href="/company/tenants/1&#34;&gt;&lt;img&gt;"' in html
    for shown in ("R$ 1.234,50", "29/11/2026", "2 / 1.000", "1.234.567", "Starter"):
        assert shown in html, shown


def test_html_text_escapes_as_markupsafe_does() -> None:
    from markupsafe import escape

    from alquimista_ops.web.pages import html_text

    for value in ('<a href="x">\'&amp;</a>', "São Paulo & Cia.", "", 42, None, "ação\n\t<>"):
        assert html_text(value) == str(escape(value)), value


def test_landing_rows_escape_every_value() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from typing import cast

    from alquimista_ops.web.company_pages import landing_rows
    from alquimista_ops.web.session import PageContext

    hostile = "<script>alert('x')</script>&"
    usage = {
        "top_tenants": [
            {
                "tenant_id": '1"><img>',
                "name": hostile,
                "plan": hostile,
                "total_requests": 1234567,
                "success_rate": 99.5,
            }
        ],
        "top_agents": [{"display_name": hostile, "total_requests": 10, "success_rate": 50.0}],
    }
    when = datetime(2026, 11, 29, 13, 5, tzinfo=UTC)
    incidents = [
        SimpleNamespace(
            tenant_id='2"><img>',
            tenant_name=hostile,
            severity=hostile,
            title=hostile,
            created_at=when,
            resolved_at=None,
        ),
        SimpleNamespace(
            tenant_id=None,
            tenant_name=None,
            severity="critical",
            title="ok",
            created_at=when,
            resolved_at=when,
        ),
    ]
    rows = landing_rows(cast(PageContext, SimpleNamespace(lang="pt-BR")), usage, incidents)
    html = "".join(str(part) for part in rows.values())
    assert "<script" not in html and "<img" not in html
    # tenant name and plan, agent, incident badge class and label, title, tenant name
    assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;") == 7
    assert 'href="/company/tenants/1&#34;&gt;&lt;img&gt;"' in html
    assert 'href="/company/tenants/2&#34;&gt;&lt;img&gt;?tab=incidents"' in html
    for shown in ("1.234.567", "99,5%", "29/11/2026 13:05 UTC", "Plataforma", "Resolvido"):
        assert shown in html, shown


# The macros ``chart``, ``period_form`` and ``trend_line`` were, before they became Python
# functions (``web.pages``): the functions must give the same HTML.
FORMER_MACROS = """
{% macro chart(id, kind, payload, label) -%}
<figure class="chart">
  <canvas id="{{ id }}-canvas" data-chart="{{ kind }}" data-source="{{ id }}" role="img" aria-label="{{ label }}"></canvas>
  <script type="application/json" id="{{ id }}">{{ payload | tojson }}</script>
</figure>
{%- endmacro %}
{% macro period_form(t, period) -%}
<form method="get" class="inline-form">
  <label for="period">{{ t('usage.period') }}</label>
  <select id="period" name="period" data-autosubmit>
    {% for p in ['7d', '30d', '90d'] %}<option value="{{ p }}"{% if p == period %} selected{% endif %}>{{ t('usage.days', n=p[:-1]) }}</option>{% endfor %}
  </select>
  <noscript><button type="submit">{{ t('usage.apply') }}</button></noscript>
</form>
{%- endmacro %}
{% macro trend_line(t, pct, tr, unit, good_when_up=True) -%}
{% if tr.delta is none %}<p class="muted">{{ t('kpi.no_previous') }}</p>
{% else %}
{% set good = (tr.direction == 'up') == good_when_up %}
<p class="muted"><span class="{{ 'trend-flat' if tr.direction == 'flat' else ('trend-up' if good else 'trend-down') }}"><span aria-hidden="true">{{ '▲' if tr.direction == 'up' else ('▼' if tr.direction == 'down' else '•') }}</span> {{ ('+' if tr.delta > 0 else '') ~ pct(tr.delta)[:-1] ~ unit }}</span> {{ t('kpi.vs_previous') }}</p>
{% endif %}
{%- endmacro %}
"""  # noqa: E501


def _squeezed(html: Any) -> str:
    """``html`` with its whitespace runs as one space and none between tags."""
    import re

    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", str(html))).strip()


def test_widgets_give_the_former_macros_html() -> None:
    from alquimista_ops.web.company_pages import trend
    from alquimista_ops.web.pages import chart, period_form, trend_line

    former = templates.env.from_string(FORMER_MACROS).module  # the page environment's tojson
    hostile = "</script><b x='1'>&amp;"

    def hostile_t(key: str, **kw: Any) -> str:
        return f"{hostile}{key}{kw}"

    checked = 0
    for lang in ("pt-BR", "en"):

        def t(key: str, _lang: str = lang, **kw: Any) -> str:
            return i18n.translate(_lang, key, **kw)

        def pct(value: Any, _lang: str = lang) -> str:
            return i18n.format_percent(_lang, value)

        trends = [
            trend(120, 100),
            trend(80, 100),
            trend(100, 100),
            trend(5, 0),
            trend(99.5, 97.25, points=True),
            trend(97.25, 99.5, points=True),
            {"delta": 3.5, "direction": "sideways", "previous": 1},
        ]
        for translate in (t, hostile_t):
            for tr in trends:
                for unit in ("%", " p.p.", hostile):
                    for good_when_up in (True, False):
                        got = trend_line(translate, pct, tr, unit, good_when_up=good_when_up)
                        want = former.trend_line(translate, pct, tr, unit, good_when_up)
                        assert _squeezed(got) == _squeezed(want), (tr, unit)
                        checked += 1
            for period in ("7d", "30d", "90d", "", hostile):
                assert _squeezed(period_form(translate, period)) == _squeezed(
                    former.period_form(translate, period)
                ), period
    payloads = [
        {"labels": ["2026-11-01", hostile], "series": [{"label": hostile, "data": [1, 2.5, None]}]},
        {"labels": [], "series": [], "money": "BRL"},
        {"labels": ["São Paulo", "ação"], "series": [{"label": "é", "data": [0, -1]}]},
    ]
    for payload in payloads:
        for names in (("usage-trend", "line", "Requests"), (hostile, hostile, hostile)):
            got = chart(*names[:2], payload, names[2])
            assert _squeezed(got) == _squeezed(former.chart(*names[:2], payload, names[2]))
    assert "<b x=" not in str(chart(hostile, "line", payloads[0], hostile))
    assert checked == 2 * 2 * 7 * 3 * 2
