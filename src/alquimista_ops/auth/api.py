"""Routes of the built-in identity provider: token endpoint and JWKS."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form
from pydantic import BaseModel

from alquimista_ops.auth import service
from alquimista_ops.auth.deps import AuthRuntimeDep
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.errors import NotFound
from alquimista_ops.core.strict import strict_query

router = APIRouter(tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    id_token: str
    token_type: str
    expires_in: int


def _jwks(runtime: AuthRuntimeDep) -> dict[str, Any]:
    if runtime.idp is None:
        raise NotFound("The built-in identity provider is disabled (AUTH_MODE=cognito)")
    return runtime.idp.jwks()


@router.get("/.well-known/jwks.json", summary="Signing keys of the built-in identity provider")
def jwks(runtime: AuthRuntimeDep) -> dict[str, Any]:
    return _jwks(runtime)


@router.get("/local-idp/.well-known/jwks.json", include_in_schema=False)
def issuer_jwks(runtime: AuthRuntimeDep) -> dict[str, Any]:
    return _jwks(runtime)


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    summary="Sign in (OAuth2 password)",
    dependencies=[strict_query()],
)
def token(
    runtime: AuthRuntimeDep,
    conn: DbDep,
    username: Annotated[str, Form(min_length=1, max_length=254)],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    grant_type: Annotated[Literal["password"], Form()] = "password",
) -> dict[str, Any]:
    if runtime.idp is None:
        raise NotFound("The built-in identity provider is disabled (AUTH_MODE=cognito)")
    return service.sign_in(conn, runtime.idp, username, password)
