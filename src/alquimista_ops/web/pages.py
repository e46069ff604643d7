"""The web dashboard: server-rendered pages over the same services as the API.

Every page is guarded on the server: no session → sign-in page; a tenant user on a
``/company`` page or a support user on billing → 403 page.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FunctionType
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import jinja2
import jinja2.runtime
import jinja2.utils
import orjson
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.utils import internalcode
from markupsafe import Markup, escape

from alquimista_ops.agents import service as agents_service
from alquimista_ops.auth import service as auth_service
from alquimista_ops.auth.deps import (
    SESSION_COOKIE,
    TenantScope,
    checked_tenant_scope,
    requested_tenant,
    resolve_tenant_scope,
    tenant_status,
)
from alquimista_ops.auth.principal import Principal
from alquimista_ops.core.errors import AppError, Forbidden, NotFound
from alquimista_ops.core.params import Page, resolve_period
from alquimista_ops.core.reads import Reads
from alquimista_ops.incidents import service as incidents_service
from alquimista_ops.integrations import service as integrations_service
from alquimista_ops.runtime import Runtime, RuntimeDep
from alquimista_ops.tenants import service as tenants_service
from alquimista_ops.usage import service as usage_service
from alquimista_ops.web import i18n
from alquimista_ops.web.session import (
    LANG_COOKIE,
    LoginRequired,
    PageContext,
    PageRefused,
    check_csrf,
    csrf_token,
    finish,
    home_for,
    language,
    navigation,
    page_principal,
    safe_next,
    set_cookie,
)

T = TypeVar("T")

WEB_DIR = Path(__file__).resolve().parent
_DICT_ATTRIBUTES = frozenset(dir(dict))


class DirectCallContext(jinja2.runtime.Context):
    """Calls plain Python functions (``t``, ``num``, ``badge``... every cell of a table calls a
    few) directly. ``Context.call`` first looks for ``pass_context``/``pass_environment``
    markers on the callable and on its ``__call__``; a plain function carries none unless
    decorated (``jinja_pass_arg``), so the result is the same (measured: 400 calls 1 097 us,
    with this 847 us)."""

    @internalcode
    def call(__self, __obj: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if type(__obj) is not FunctionType or hasattr(__obj, "jinja_pass_arg"):
            return super().call(__obj, *args, **kwargs)
        kwargs.pop("_block_vars", None)
        kwargs.pop("_loop_vars", None)
        try:
            return __obj(*args, **kwargs)
        except StopIteration:
            return __self.environment.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )


class PageEnvironment(jinja2.Environment):
    """``row.name`` on a dict (what the services return) looks the key up first. Jinja tries
    ``getattr`` first and falls back to the item after an AttributeError, which cost about as
    much as the rest of rendering a table cell (measured: 225 lookups 248 us, item first 118 us).
    Same result: a name that is not an attribute of ``dict`` can only be found as an item.
    Calls of plain functions skip Jinja's checks (``DirectCallContext``)."""

    context_class = DirectCallContext
    language: str | None = None  # the literal translations compiled in (StaticTranslations)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)


class StaticTranslations(Extension):
    """Each language's templates are compiled with their literal translations in: the tokens
    of ``t('key')`` (one literal argument, nothing else; not an attribute ``x.t(...)``) become
    the string ``i18n.translate(language, 'key')``, which Jinja then escapes once, at compile
    time. A page renders 50-80 of them (labels, headings, navigation), each otherwise a call
    through the context and an escape at every render. The environment's ``language`` says
    which; ``None`` leaves the calls as they are."""

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        language = getattr(self.environment, "language", None)
        if language is None:
            yield from stream
            return
        held: list[Token] = []  # the start of a ``t('key')``: ``t``, ``(``, ``'key'``
        previous: Token | None = None
        for token in stream:
            held.append(token)
            kinds = [t.type for t in held]
            if kinds == ["name"]:
                if token.value == "t" and not (previous and previous.type == "dot"):
                    continue
            elif kinds in (["name", "lparen"], ["name", "lparen", "string"]):
                continue
            elif kinds == ["name", "lparen", "string", "rparen"]:
                key = held[2].value
                held = [Token(held[0].lineno, "string", i18n.translate(language, key))]
            yield from held
            previous, held = held[-1], []
        yield from held


def _environment(language: str | None = None) -> PageEnvironment:
    env = PageEnvironment(
        loader=jinja2.FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=jinja2.select_autoescape(),
        extensions=[StaticTranslations],
    )
    env.language = language
    return env


# The environment Jinja2Templates(directory=...) builds, as a PageEnvironment.
templates = Jinja2Templates(env=_environment())
router = APIRouter(include_in_schema=False)


def html_text(value: Any) -> str:
    """``str(value)`` escaped for HTML: the same characters as ``markupsafe.escape``, as a
    plain string (no ``Markup`` object per value: a table row built in Python escapes a
    dozen)."""
    return (
        str(value)
        .replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


def badge(t: Callable[..., str], status: Any) -> Markup:
    """A status badge with its translated label (the status itself when it has none)."""
    key = f"status.{status}"
    label = t(key)
    return Markup(
        f'<span class="badge badge-{escape(status)}">{escape(label if label != key else status)}'
        "</span>"
    )


def severity(t: Callable[..., str], value: Any) -> Markup:
    """An incident severity badge."""
    return Markup(
        f'<span class="badge sev-{escape(value)}">{escape(t(f"severity.{value}"))}</span>'
    )


def chart(id: str, kind: str, payload: Any, label: str) -> Markup:
    """A chart: its canvas and its data as JSON (``static/app.js`` draws it). Python
    functions rather than macros, as ``badge``: a page calls a few (the landing seven: two
    charts, four KPI trend lines, the period form), and a macro call cost ~10 us each
    (profiled)."""
    data = jinja2.utils.htmlsafe_json_dumps(payload, dumps=_orjson_dumps)
    return Markup(
        f'<figure class="chart">\n  <canvas id="{escape(id)}-canvas" data-chart="{escape(kind)}"'
        f' data-source="{escape(id)}" role="img" aria-label="{escape(label)}"></canvas>\n'
        f'  <script type="application/json" id="{escape(id)}">{data}</script>\n</figure>'
    )


PERIODS = ("7d", "30d", "90d")  # the staff pages' periods (``period_form``, ``page_period``)


def period_form(t: Callable[..., str], period: str) -> Markup:
    """The period selector of the staff pages (submits itself: ``data-autosubmit``)."""
    options = "".join(
        f'<option value="{choice}"{" selected" if choice == period else ""}>'
        f"{escape(t('usage.days', n=choice[:-1]))}</option>"
        for choice in PERIODS
    )
    return Markup(
        '<form method="get" class="inline-form">\n'
        f'  <label for="period">{escape(t("usage.period"))}</label>\n'
        f'  <select id="period" name="period" data-autosubmit>\n    {options}\n  </select>\n'
        f'  <noscript><button type="submit">{escape(t("usage.apply"))}</button></noscript>\n'
        "</form>"
    )


_ARROWS = {"up": "\u25b2", "down": "\u25bc", "flat": "\u2022"}


def trend_line(
    t: Callable[..., str],
    pct: Callable[[Any], str],
    trend: dict[str, Any],
    unit: str,
    good_when_up: bool = True,
) -> Markup:
    """A KPI's change against the previous period (``company_pages.trend``): an arrow, the
    change in ``unit`` and whether it is good news (``good_when_up``: more is better)."""
    delta, direction = trend["delta"], trend["direction"]
    if delta is None:
        return Markup(f'<p class="muted">{escape(t("kpi.no_previous"))}</p>\n')
    if direction == "flat":
        tone = "trend-flat"
    else:
        tone = "trend-up" if (direction == "up") == good_when_up else "trend-down"
    change = ("+" if delta > 0 else "") + pct(delta)[:-1] + unit
    return Markup(
        f'<p class="muted"><span class="{tone}"><span aria-hidden="true">'
        f"{_ARROWS.get(direction, _ARROWS['flat'])}</span> {escape(change)}</span>"
        f" {escape(t('kpi.vs_previous'))}</p>\n"
    )


def _install_filters() -> None:
    env = templates.env
    env.globals["formats"] = i18n
    # Python functions rather than macros: they are called once per table row, and a macro
    # call cost twice as much (measured with the templates' rows).
    env.globals["badge"] = badge
    env.globals["severity"] = severity
    env.globals["chart"] = chart
    env.globals["period_form"] = period_form
    env.globals["trend_line"] = trend_line
    env.filters["tojson_attr"] = lambda value: json.dumps(value, default=str, ensure_ascii=False)
    env.globals["column"] = column
    # ``tojson`` (the charts' data) through orjson: several times faster than json.dumps on the
    # long number lists of a chart; the same JSON (keys sorted; Jinja still escapes it for HTML).
    env.policies["json.dumps_function"] = _orjson_dumps
    env.policies["json.dumps_kwargs"] = {}


def _language_templates(language: str) -> Jinja2Templates:
    """The templates with ``language``'s literal translations compiled in, and the same
    globals, filters, tests and policies as ``templates`` (the very same dicts)."""
    env = _environment(language)
    env.globals = templates.env.globals
    env.filters = templates.env.filters
    env.tests = templates.env.tests
    env.policies = templates.env.policies
    return Jinja2Templates(env=env)


def column(rows: Iterable[Any], key: str, text: bool = False) -> list[Any]:
    """One field of every row (dicts), as a chart's labels or data: what
    ``rows | map(attribute=key) | list`` gives (``| map('string')`` with ``text``), in one
    comprehension instead of a filter call and an attribute lookup per row."""
    if text:
        return [str(row[key]) for row in rows]
    return [row[key] for row in rows]


def _orjson_dumps(value: Any, **options: Any) -> str:
    if options:  # ``tojson(indent=...)``: json.dumps's own formatting
        return json.dumps(value, sort_keys=True, **options)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


_install_filters()
# The pages render through the one of their language (``render``, ``templates_for``).
TEMPLATES_BY_LANGUAGE = {language: _language_templates(language) for language in i18n.LANGUAGES}


def templates_for(language: str) -> Jinja2Templates:
    return TEMPLATES_BY_LANGUAGE.get(language, templates)


def render(ctx: PageContext, template: str, status_code: int = 200, **values: Any) -> Response:
    lang = ctx.lang

    def t(key: str, **kw: Any) -> str:
        return i18n.translate(lang, key, **kw)

    response = templates_for(lang).TemplateResponse(
        ctx.request,
        template,
        {
            "ctx": ctx,
            "t": t,
            "lang": lang,
            "num": lambda v, d=0: i18n.format_number(lang, v, d),
            "brl": lambda v: i18n.format_brl(lang, v),
            "usd": lambda v: i18n.format_usd(lang, v),
            "pct": lambda v: i18n.format_percent(lang, v),
            "fdate": lambda v: i18n.format_date(lang, v),
            "fdatetime": lambda v: i18n.format_datetime(lang, v),
            **values,
        },
        status_code=status_code,
    )
    return response


async def page_context(
    request: Request, runtime: Runtime, *, internal: bool = False, admin: bool = False
) -> PageContext:
    principal = await page_principal(request, runtime)
    if principal is None:
        raise LoginRequired(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
    if internal and not principal.is_internal:
        raise PageRefused(403, "error.forbidden")
    if admin and not principal.is_internal_admin:
        raise PageRefused(403, "error.forbidden")
    return PageContext(
        request=request,
        principal=principal,
        lang=language(request),
        csrf=csrf_token(request),
        nav=navigation(principal, request.url.path),
    )


@contextmanager
def _refused_as_page() -> Iterator[None]:
    """The tenant scope's refusals as the page's error pages."""
    try:
        yield
    except Forbidden as exc:
        key = "error.suspended" if exc.code == "TENANT_SUSPENDED" else "error.forbidden"
        raise PageRefused(403, key) from exc
    except NotFound as exc:
        raise PageRefused(404, "error.not_found") from exc
    except AppError as exc:
        raise PageRefused(400, "error.not_found") from exc


async def tenant_scope(
    reads: Reads, principal: Principal, tenant_id: uuid.UUID | None
) -> TenantScope:
    """The tenant a page may show, read in the page's read session."""
    with _refused_as_page():
        return await resolve_tenant_scope(reads, principal, tenant_id)


async def page_reads(runtime: Runtime, read: Callable[[Reads], Awaitable[T]]) -> T:
    """``read(reads)`` in a read session (``core.reads``) of its own."""
    async with runtime.reads.session() as reads:
        return await read(reads)


# -- sign-in ---------------------------------------------------------------------------------
@router.get("/")
async def home(request: Request, runtime: RuntimeDep) -> Response:
    principal = await page_principal(request, runtime)
    return RedirectResponse(home_for(principal) if principal else "/login", status_code=303)


@router.get("/login")
def login_page(request: Request, runtime: RuntimeDep, next: str | None = None) -> Response:
    if runtime.settings.auth_mode == "cognito":
        from alquimista_ops.web.cognito import start_login

        return start_login(request, runtime, safe_next(next))
    return _login_form(request, runtime, next=safe_next(next))


def _login_form(
    request: Request, runtime: Runtime, *, next: str | None, error: bool = False, email: str = ""
) -> Response:
    lang = language(request)
    response = templates_for(lang).TemplateResponse(
        request,
        "login.html",
        {
            "t": lambda key, **kw: i18n.translate(lang, key, **kw),
            "lang": lang,
            "csrf": csrf_token(request),
            "next": next or "",
            "error": error,
            "email": email,
        },
        status_code=401 if error else 200,
    )
    return finish(request, response, runtime)


@router.post("/login")
def login_submit(
    request: Request,
    runtime: RuntimeDep,
    username: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    check_csrf(request, csrf)
    if runtime.idp is None:
        raise PageRefused(404, "error.not_found")
    try:
        with runtime.engine.begin() as conn:
            tokens = auth_service.sign_in(conn, runtime.idp, username, password)
    except AppError:
        return _login_form(request, runtime, next=safe_next(next), error=True, email=username)
    principal = runtime.verifier.verify(tokens["id_token"])
    response = RedirectResponse(safe_next(next) or home_for(principal), status_code=303)
    set_cookie(
        response,
        runtime,
        SESSION_COOKIE,
        tokens["id_token"],
        http_only=True,
        max_age=int(tokens["expires_in"]),
    )
    return response


@router.post("/logout")
def logout(
    request: Request, runtime: RuntimeDep, csrf: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    check_csrf(request, csrf)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang")
def switch_language(
    runtime: RuntimeDep,
    set: Annotated[str, Query(pattern="^(pt-BR|en)$")] = "pt-BR",
    next: str | None = None,
) -> Response:
    response = RedirectResponse(safe_next(next) or "/", status_code=303)
    set_cookie(response, runtime, LANG_COOKIE, set, http_only=False, max_age=365 * 86400)
    return response


# -- tenant area -----------------------------------------------------------------------------
# GET pages are async: their reads run in one read session on the event loop (the statements of
# a page's services in one round trip where they are independent), and the template renders on
# the event loop.
async def _tenant_page(
    request: Request,
    runtime: Runtime,
    tenant_id: uuid.UUID | None,
    read: Callable[[Reads, TenantScope], Awaitable[T]],
) -> tuple[PageContext, T]:
    """The page's context and ``read(reads, scope)``, read beside the tenant's status (one
    round trip where ``read``'s first statements allow); what was read is shown only once the
    status check passed (an unknown or suspended tenant shows nothing)."""
    ctx = await page_context(request, runtime)
    with _refused_as_page():
        requested = requested_tenant(ctx.principal, tenant_id)
    unchecked = TenantScope(tenant_id=requested, principal=ctx.principal)

    async def page_data(reads: Reads) -> tuple[TenantScope, T]:
        status, data = await reads.gather(
            tenant_status(reads, requested), read(reads, unchecked), return_exceptions=True
        )
        if isinstance(status, BaseException):
            raise status
        with _refused_as_page():
            scope = checked_tenant_scope(ctx.principal, requested, status)
        if isinstance(data, BaseException):
            raise data
        return scope, data

    scope, data = await page_reads(runtime, page_data)
    ctx.extra["tenant_query"] = f"?tenant_id={scope.tenant_id}" if ctx.principal.is_internal else ""
    return ctx, data


@router.get("/dashboard")
async def tenant_overview(
    request: Request,
    runtime: RuntimeDep,
    tenant_id: uuid.UUID | None = None,
    period: Annotated[str, Query(pattern="^(7d|30d|90d)$")] = "30d",
) -> Response:
    window = resolve_period(period, None, None)

    async def read(reads: Reads, scope: TenantScope) -> dict[str, Any]:
        tenant, usage, agents, integrations = await reads.gather(
            tenants_service.tenant_me(reads, scope),
            # the overview shows the tenant's totals and days; agents have their own table
            usage_service.tenant_usage(reads, scope, window, None, with_agents=False),
            agents_service.tenant_agents(reads, scope, "all"),
            integrations_service.tenant_integrations(reads, scope, None, None),
        )
        return {
            "tenant": tenant,
            "usage": usage,
            "agents": agents["agents"],
            "integrations": integrations["integrations"],
        }

    ctx, data = await _tenant_page(request, runtime, tenant_id, read)
    return finish(request, render(ctx, "tenant/overview.html", period=period, **data), runtime)


@router.get("/dashboard/agents")
async def tenant_agents_page(
    request: Request,
    runtime: RuntimeDep,
    tenant_id: uuid.UUID | None = None,
    status: Annotated[str, Query(pattern="^(active|inactive|error|all)$")] = "all",
) -> Response:
    async def read(reads: Reads, scope: TenantScope) -> list[dict[str, Any]]:
        found = await agents_service.tenant_agents(reads, scope, status)
        agents: list[dict[str, Any]] = found["agents"]
        return agents

    ctx, agents = await _tenant_page(request, runtime, tenant_id, read)
    return finish(request, render(ctx, "tenant/agents.html", agents=agents, status=status), runtime)


@router.get("/dashboard/usage")
async def tenant_usage_page(
    request: Request,
    runtime: RuntimeDep,
    tenant_id: uuid.UUID | None = None,
    period: Annotated[str, Query(pattern="^(7d|30d|90d)$")] = "30d",
    agent_id: uuid.UUID | None = None,
) -> Response:
    window = resolve_period(period, None, None)

    async def read(reads: Reads, scope: TenantScope) -> tuple[list[Any], dict[str, Any]]:
        if agent_id is None:
            agents, usage = await reads.gather(
                agents_service.tenant_agents(reads, scope, "all"),
                usage_service.tenant_usage(reads, scope, window, None),
            )
            return agents["agents"], usage
        # one agent's usage: the agent is checked first (another tenant's is not found)
        shown = (await agents_service.tenant_agents(reads, scope, "all"))["agents"]
        if agent_id not in {a["id"] for a in shown}:
            raise PageRefused(404, "error.not_found")
        return shown, await usage_service.tenant_usage(reads, scope, window, agent_id)

    ctx, (agents, usage) = await _tenant_page(request, runtime, tenant_id, read)
    return finish(
        request,
        render(
            ctx, "tenant/usage.html", usage=usage, agents=agents, period=period, agent_id=agent_id
        ),
        runtime,
    )


@router.get("/dashboard/integrations")
async def tenant_integrations_page(
    request: Request, runtime: RuntimeDep, tenant_id: uuid.UUID | None = None
) -> Response:
    async def read(reads: Reads, scope: TenantScope) -> list[dict[str, Any]]:
        found = await integrations_service.tenant_integrations(reads, scope, None, None)
        items: list[dict[str, Any]] = found["integrations"]
        return items

    ctx, items = await _tenant_page(request, runtime, tenant_id, read)
    return finish(request, render(ctx, "tenant/integrations.html", integrations=items), runtime)


@router.get("/dashboard/support")
async def tenant_support_page(
    request: Request,
    runtime: RuntimeDep,
    tenant_id: uuid.UUID | None = None,
    status: Annotated[str, Query(pattern="^(open|resolved|all)$")] = "all",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    limit = 20
    ctx, data = await _tenant_page(
        request,
        runtime,
        tenant_id,
        lambda reads, scope: incidents_service.tenant_incidents(
            reads, scope, status, None, Page(limit, (page - 1) * limit)
        ),
    )
    return finish(
        request,
        render(
            ctx,
            "tenant/support.html",
            data=data,
            status=status,
            page=page,
            limit=limit,
            base_query=base_query(request),
        ),
        runtime,
    )


def base_query(request: Request) -> str:
    """The current query string without ``page``, ready for ``page=N`` to be appended."""
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    return urlencode(kept) + "&" if kept else ""
