"""``core.routing``: the routers a path cannot reach are skipped, and every request still
reaches the route (or the 404/405/redirect) it reached before."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import MutableMapping
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.routing import Match

from alquimista_ops.app import create_app
from alquimista_ops.core.routing import first_segment, skip_unreachable_routers
from alquimista_ops.core.runtime import Runtime

PARAMETER = re.compile(r"\{[^}]+\}")


def _unguarded(app: FastAPI) -> FastAPI:
    for route in app.router.routes:
        route.__dict__.pop("matches", None)  # FastAPI's own method again
    return app


def _routes(app: FastAPI) -> list[Any]:
    """Every route of ``app`` with a path and methods, in the included routers too."""
    found = []

    def walk(routes: list[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif getattr(route, "methods", None):
                found.append(route)

    walk(app.router.routes)
    return found


def _selected(app: FastAPI, method: str, path: str) -> tuple[Any, str]:
    """The endpoint the app's router selects for ``method path`` (read off the scope, where the
    router records it) and what came of it: a response status or an exception."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
        "app": app,
    }
    statuses: list[int] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return requests.pop() if requests else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def call() -> str:
        try:
            await app.router(scope, receive, send)
        except Exception as exc:  # the app's exception handlers sit outside the router
            return f"{type(exc).__name__}:{getattr(exc, 'status_code', '')}"
        return str(statuses[0]) if statuses else "no response"

    outcome = asyncio.run(call())
    return _name(scope.get("endpoint")), outcome


def _name(endpoint: Any) -> str | None:
    # by name: the app's own endpoints (the OpenAPI document's) are closures of each app
    if endpoint is None:
        return None
    named = endpoint if hasattr(endpoint, "__qualname__") else type(endpoint)  # an ASGI app
    return f"{named.__module__}.{named.__qualname__}"


@pytest.fixture(scope="module")
def apps(runtime: Runtime) -> tuple[FastAPI, FastAPI]:
    return create_app(runtime=runtime), _unguarded(create_app(runtime=runtime))


def test_first_segment() -> None:
    assert first_segment("/company/tenants/x") == "company"
    assert first_segment("/company") == "company"
    assert first_segment("/") == ""
    assert first_segment("") == ""


def test_the_app_guards_its_routers(apps: tuple[FastAPI, FastAPI]) -> None:
    guarded, _plain = apps
    app = create_app(runtime=guarded.state.runtime)
    routers = [r for r in app.router.routes if hasattr(r, "original_router")]
    assert routers
    assert all("matches" in route.__dict__ for route in routers)
    # a page's path is no longer tried against an API router, nor an API path against a page's
    scope = {"type": "http", "path": "/company", "method": "GET", "root_path": ""}
    assert sum(route.matches(scope)[0] != Match.NONE for route in routers) == 1
    # served under a prefix: FastAPI's own test, unchanged
    prefixed = {**scope, "root_path": "/prod", "path": "/prod/company"}
    assert [route.matches(prefixed) for route in routers] == [
        type(route).matches(route, prefixed) for route in routers
    ]
    assert skip_unreachable_routers(_unguarded(app)) == len(routers)


def test_every_request_reaches_what_it_reached_before(apps: tuple[FastAPI, FastAPI]) -> None:
    guarded, plain = apps
    routes = _routes(plain)
    assert len(routes) > 30
    checked = 0
    for route in routes:
        path = PARAMETER.sub(str(uuid.uuid4()), route.path)
        for method in sorted(route.methods):
            got = _selected(guarded, method, path)
            assert got == _selected(plain, method, path), (method, path)
            assert got[0] == _name(route.endpoint), (method, path)
            checked += 1
        # a method the path does not serve: the same 405 (or the other route that serves it)
        assert _selected(guarded, "PATCH", path) == _selected(plain, "PATCH", path), path
        # a trailing slash: the same redirect
        assert _selected(guarded, "GET", path + "/") == _selected(plain, "GET", path + "/")
    for path in ("/", "/nope", "/company-x", "/tenantx/me", "/static/app.css", "/docs"):
        assert _selected(guarded, "GET", path) == _selected(plain, "GET", path), path
    assert _selected(guarded, "GET", "/nope")[0] is None
    assert checked == sum(len(route.methods) for route in routes)
