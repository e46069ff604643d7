"""Authentication and authorization dependencies, and tenant scoping.

Tenant scoping lives here and only here: ``TenantScopeDep`` resolves which tenant a
``/tenant/*`` request may read, from the token claim for tenant users and from
``?tenant_id=`` for internal users.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from alquimista_ops.auth.principal import Principal
from alquimista_ops.core.deps import DbDep, RuntimeDep
from alquimista_ops.core.errors import Forbidden, NotFound, Unauthorized
from alquimista_ops.core.logging import tenant_id_var, user_sub_var
from alquimista_ops.core.schema import tenants


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        return token.strip()
    return None


SESSION_COOKIE = "opdash_session"
CSRF_COOKIE = "opdash_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_token(request: Request) -> str | None:
    """The session cookie of the web pages. Unsafe methods also need the CSRF header
    (double submit: it must equal the CSRF cookie), so a cross-site form cannot use it."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    if request.method not in SAFE_METHODS:
        expected = request.cookies.get(CSRF_COOKIE)
        given = request.headers.get(CSRF_HEADER)
        if not expected or not given or not secrets.compare_digest(expected, given):
            raise Forbidden("Missing or invalid CSRF token", code="CSRF_FAILED")
    return token


# Declares the bearer scheme in the OpenAPI document (every route that authenticates carries it);
# the header itself is read and verified below.
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearerAuth")


async def get_principal(
    request: Request,
    runtime: RuntimeDep,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    # async: a token verified a moment ago is a dictionary look-up on the event loop;
    # a new one is verified in the thread pool (the JWKS may have to be fetched).
    token = bearer_token(request) or session_token(request)
    if not token:
        raise Unauthorized("Authentication required")
    principal = runtime.verifier.cached(token)
    if principal is None:
        principal = await run_in_threadpool(runtime.verifier.verify, token)
    if not principal.known_groups:
        raise Forbidden("Your account is in no group of this application", code="NO_GROUP")
    user_sub_var.set(principal.sub)
    if principal.tenant_id:
        tenant_id_var.set(str(principal.tenant_id))
    request.state.principal = principal
    # The access log reads these from the request state: context variables set inside the
    # thread pool (sync dependencies) do not reach the middleware.
    request.state.user_sub = principal.sub
    if principal.tenant_id:
        request.state.tenant_id = str(principal.tenant_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_internal(principal: PrincipalDep) -> Principal:
    if not principal.is_internal:
        raise Forbidden("This route is for AlquimistaAI staff only")
    return principal


async def require_internal_admin(principal: PrincipalDep) -> Principal:
    if not principal.is_internal_admin:
        raise Forbidden("This route needs the INTERNAL_ADMIN group")
    return principal


InternalDep = Annotated[Principal, Depends(require_internal)]
InternalAdminDep = Annotated[Principal, Depends(require_internal_admin)]


@dataclass(frozen=True, slots=True)
class TenantScope:
    """The one tenant a request may read, and who asks."""

    tenant_id: uuid.UUID
    principal: Principal
    tenant_status: str


def resolve_tenant_scope(
    conn: Connection, principal: Principal, requested: uuid.UUID | None
) -> TenantScope:
    if principal.is_internal:
        if requested is None:
            from alquimista_ops.core.errors import ValidationFailed

            raise ValidationFailed(
                "Internal users must pass tenant_id", details={"field": "tenant_id"}
            )
        tenant_id = requested
    else:
        if principal.tenant_id is None:
            raise Forbidden("Your account is not linked to a tenant", code="NO_TENANT")
        if requested is not None and requested != principal.tenant_id:
            raise Forbidden("You may only read your own tenant")
        tenant_id = principal.tenant_id
    status = conn.execute(
        sa.select(tenants.c.status).where(tenants.c.id == tenant_id)
    ).scalar_one_or_none()
    if status is None:
        if principal.is_internal:
            raise NotFound(f"Tenant {tenant_id} not found", details={"field": "tenant_id"})
        raise Forbidden("Your tenant does not exist", code="NO_TENANT")
    if status == "suspended" and not principal.is_internal:
        raise Forbidden("Your company's account is suspended", code="TENANT_SUSPENDED")
    tenant_id_var.set(str(tenant_id))
    return TenantScope(tenant_id=tenant_id, principal=principal, tenant_status=status)


def get_tenant_scope(
    request: Request,
    conn: DbDep,
    principal: PrincipalDep,
    tenant_id: Annotated[
        uuid.UUID | None,
        Query(description="Tenant to read (internal users only)"),
    ] = None,
) -> TenantScope:
    scope = resolve_tenant_scope(conn, principal, tenant_id)
    request.state.tenant_id = str(scope.tenant_id)  # for the access log (see get_principal)
    return scope


TenantScopeDep = Annotated[TenantScope, Depends(get_tenant_scope)]
