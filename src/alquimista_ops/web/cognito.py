"""Sign-in through the Cognito hosted UI (AUTH_MODE=cognito): authorization code + PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Annotated
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from alquimista_ops.auth.deps import SESSION_COOKIE
from alquimista_ops.core.errors import AppError
from alquimista_ops.runtime import Runtime, RuntimeDep
from alquimista_ops.web.session import PageRefused, home_for, safe_next, set_cookie

PKCE_COOKIE = "opdash_pkce"
router = APIRouter(include_in_schema=False)


def _domain(runtime: Runtime) -> str:
    domain = runtime.settings.cognito_domain
    if not domain:
        raise PageRefused(404, "error.not_found")
    return domain.rstrip("/") if domain.startswith("https://") else f"https://{domain.rstrip('/')}"


def _redirect_uri(request: Request) -> str:
    return str(request.url_for("cognito_callback"))


def start_login(request: Request, runtime: Runtime, next_path: str | None) -> Response:
    """Redirect to the hosted UI with a PKCE challenge; the verifier waits in a cookie."""
    verifier = secrets.token_urlsafe(64)
    state = secrets.token_urlsafe(24)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = urlencode(
        {
            "response_type": "code",
            "client_id": runtime.settings.client_id,
            "redirect_uri": _redirect_uri(request),
            "scope": "openid email profile",
            "state": state,
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
    )
    response = RedirectResponse(f"{_domain(runtime)}/oauth2/authorize?{query}", status_code=303)
    set_cookie(
        response,
        runtime,
        PKCE_COOKIE,
        f"{state}.{verifier}.{next_path or ''}",
        http_only=True,
        max_age=600,
    )
    return response


@router.get("/auth/callback", name="cognito_callback")
def cognito_callback(
    request: Request,
    runtime: RuntimeDep,
    code: Annotated[str, Query(max_length=2048)],
    state: Annotated[str, Query(max_length=256)],
) -> Response:
    stored = request.cookies.get(PKCE_COOKIE, "")
    saved_state, _, rest = stored.partition(".")
    verifier, _, next_path = rest.partition(".")
    if not saved_state or not secrets.compare_digest(saved_state, state) or not verifier:
        raise PageRefused(403, "error.forbidden")
    try:
        token_response = httpx.post(
            f"{_domain(runtime)}/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "client_id": runtime.settings.client_id,
                "code": code,
                "redirect_uri": _redirect_uri(request),
                "code_verifier": verifier,
            },
            timeout=10,
        )
        token_response.raise_for_status()
        id_token = token_response.json()["id_token"]
        principal = runtime.verifier.verify(id_token)
    except (httpx.HTTPError, KeyError, ValueError, AppError) as exc:
        raise PageRefused(401, "login.invalid") from exc
    response = RedirectResponse(safe_next(next_path) or home_for(principal), status_code=303)
    set_cookie(response, runtime, SESSION_COOKIE, id_token, http_only=True, max_age=3600)
    response.delete_cookie(PKCE_COOKIE, path="/")
    return response
