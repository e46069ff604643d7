"""Server-side guards of the pages, without a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from alquimista_ops.app import create_app
from alquimista_ops.core.settings import Settings
from alquimista_ops.runtime import build_runtime
from tests.conftest import auth


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/dashboard", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/dashboard"


def test_logout_without_csrf_is_refused(client: TestClient) -> None:
    response = client.post("/logout", data={}, follow_redirects=False)
    assert response.status_code == 403


def test_login_without_csrf_is_refused(client: TestClient) -> None:
    response = client.post(
        "/login", data={"username": "a@b.co", "password": "x"}, follow_redirects=False
    )
    assert response.status_code == 403


def test_open_redirect_is_not_followed(client: TestClient) -> None:
    response = client.get("/lang?set=en&next=//evil.example.com", follow_redirects=False)
    assert response.headers["location"] == "/"


def test_session_cookie_api_posts_need_csrf_header(client: TestClient, token_for: Any) -> None:
    token = token_for("INTERNAL_ADMIN")
    client.cookies.set("opdash_session", token)
    try:
        response = client.post("/auth/token", data={"username": "x", "password": "y"})
        assert response.status_code in (401, 404)  # the token route does not use the session
        response = client.get("/health")
        assert response.status_code == 200
    finally:
        client.cookies.clear()


def test_dashboard_flag_off_turns_pages_off_but_not_api(
    settings: Settings, engine: Any, tmp_path: Path, token_for: Any
) -> None:
    flagged = settings.model_copy(update={"enable_operational_dashboard": False})
    app = create_app(runtime=build_runtime(flagged, engine))
    with TestClient(app) as client:
        for path in ("/", "/login", "/dashboard", "/company", "/static/app.css"):
            assert client.get(path, follow_redirects=False).status_code == 404, path
        assert client.get("/health").status_code == 200
        response = client.get("/tenant/me", headers=auth(token_for("TENANT_USER")))
        assert response.status_code in (200, 403)  # the API still answers (403: no tenant row)


def test_pages_send_security_headers(client: TestClient) -> None:
    response = client.get("/login")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "opdash_csrf" in response.cookies
