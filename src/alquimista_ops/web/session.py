"""Web sessions: the ID token in an HttpOnly cookie, CSRF double-submit, page guards."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from alquimista_ops.auth.deps import CSRF_COOKIE, SESSION_COOKIE
from alquimista_ops.auth.principal import Principal
from alquimista_ops.core.errors import AppError
from alquimista_ops.runtime import Runtime
from alquimista_ops.web.i18n import DEFAULT_LANGUAGE, LANGUAGES

LANG_COOKIE = "opdash_lang"


class LoginRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class PageRefused(Exception):
    def __init__(self, status: int, message_key: str) -> None:
        self.status = status
        self.message_key = message_key


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE)
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (created on first use, sent back as a cookie)."""
    token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf", None)
    if not token:
        token = secrets.token_urlsafe(32)
        request.state.new_csrf = token
    return str(token)


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected or not submitted or not secrets.compare_digest(expected, submitted):
        raise PageRefused(403, "error.forbidden")


def set_cookie(
    response: Response,
    runtime: Runtime,
    name: str,
    value: str,
    *,
    http_only: bool,
    max_age: int | None = None,
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=http_only,
        secure=not runtime.settings.is_development,
        samesite="lax",
        path="/",
    )


def finish(request: Request, response: Response, runtime: Runtime) -> Response:
    """Send the CSRF cookie if this request created one."""
    new = getattr(request.state, "new_csrf", None)
    if new:
        set_cookie(response, runtime, CSRF_COOKIE, new, http_only=False)
    return response


async def page_principal(request: Request, runtime: Runtime) -> Principal | None:
    """Who is signed in (the session cookie), or None. A token verified a moment ago is a
    dictionary look-up on the event loop; a new one is verified in the thread pool (the JWKS
    may have to be fetched), as ``auth.deps.authenticate`` does."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    principal = runtime.verifier.cached(token)
    if principal is None:
        try:
            principal = await run_in_threadpool(runtime.verifier.verify, token)
        except AppError:
            return None
    return principal if principal.known_groups else None


@dataclass(frozen=True)
class NavItem:
    href: str
    label_key: str
    active: bool


@dataclass
class PageContext:
    request: Request
    principal: Principal
    lang: str
    csrf: str
    nav: list[NavItem] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


TENANT_NAV = (
    ("/dashboard", "nav.overview"),
    ("/dashboard/agents", "nav.agents"),
    ("/dashboard/usage", "nav.usage"),
    ("/dashboard/integrations", "nav.integrations"),
    ("/dashboard/support", "nav.support"),
)
COMPANY_NAV = (
    ("/company", "nav.overview", False),
    ("/company/tenants", "nav.tenants", False),
    ("/company/usage", "nav.usage", False),
    ("/company/billing", "nav.billing", True),  # INTERNAL_ADMIN only
    ("/company/operations", "nav.operations", False),
)


def navigation(principal: Principal, path: str) -> list[NavItem]:
    """Only what the user may open."""

    def is_active(href: str, root: str) -> bool:
        return path == href or (href != root and path.startswith(href + "/"))

    if principal.is_internal:
        return [
            NavItem(href, key, is_active(href, "/company"))
            for href, key, admin_only in COMPANY_NAV
            if not admin_only or principal.is_internal_admin
        ]
    return [NavItem(href, key, is_active(href, "/dashboard")) for href, key in TENANT_NAV]


def home_for(principal: Principal) -> str:
    return "/company" if principal.is_internal else "/dashboard"


def safe_next(value: str | None) -> str | None:
    """Only same-site relative paths are accepted as a post-login destination."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None
