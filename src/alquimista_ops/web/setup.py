"""Mounting the web dashboard on the app (only when ENABLE_OPERATIONAL_DASHBOARD is true)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alquimista_ops.web import i18n
from alquimista_ops.web.cognito import router as cognito_router
from alquimista_ops.web.company_pages import router as company_router
from alquimista_ops.web.pages import (
    TEMPLATES_BY_LANGUAGE,
    WEB_DIR,
    router,
    templates,
    templates_for,
)
from alquimista_ops.web.session import LoginRequired, PageRefused, language

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self' https:; base-uri 'self'"
)


def install_web(app: FastAPI) -> None:
    # Compiled templates are cached by the environment; outside development they are not
    # checked for changes either (with auto_reload every render stat()s each template it uses:
    # the page, base.html and macros.html).
    development = app.state.runtime.settings.is_development
    for env in (templates.env, *(t.env for t in TEMPLATES_BY_LANGUAGE.values())):
        env.auto_reload = development
        if not development:
            # Every template compiled now, when the worker starts (~160 ms per language),
            # rather than by the first request for each page in each worker (10-27 ms each,
            # measured): that request, and every one queued behind it, waited for the compiler.
            for name in env.list_templates(extensions=["html"]):
                env.get_template(name)
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    app.include_router(router)
    app.include_router(cognito_router)
    app.include_router(company_router)

    @app.exception_handler(LoginRequired)
    async def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='/')}", status_code=303)

    @app.exception_handler(PageRefused)
    async def _refused(request: Request, exc: PageRefused) -> Response:
        lang = language(request)
        return templates_for(lang).TemplateResponse(
            request,
            "error.html",
            {
                "t": lambda key, **kw: i18n.translate(lang, key, **kw),
                "lang": lang,
                "status": exc.status,
                "message": i18n.translate(lang, exc.message_key),
            },
            status_code=exc.status,
        )

    # pure ASGI (a BaseHTTPMiddleware wrapped every API request in an extra task and
    # response stream); it only looks at the start message of each response.
    app.add_middleware(PageHeadersMiddleware)


class PageHeadersMiddleware:
    """Content-Security-Policy and ``Cache-Control: no-store`` on HTML responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    headers["Content-Security-Policy"] = CSP
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
