"""Authentication and authorization dependencies, and tenant scoping.

Tenant scoping lives here and only here: ``TenantReadDep`` resolves which tenant a
``/tenant/*`` request may read, from the token claim for tenant users and from
``?tenant_id=`` for internal users.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool

from alquimista_ops.auth.principal import Principal
from alquimista_ops.core.cache import Cache, CacheKey, tenant_scope
from alquimista_ops.core.deps import read_db
from alquimista_ops.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from alquimista_ops.core.fastread import Call
from alquimista_ops.core.http_cache import cached_json_async, cached_value
from alquimista_ops.core.logging import tenant_id_var, user_sub_var
from alquimista_ops.core.runtime import Runtime
from alquimista_ops.core.schema import tenants


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Authorization header must be 'Bearer <token>'")
        return token.strip()
    return None


T = TypeVar("T")

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


async def authenticate(request: Request) -> Principal:
    """The verified caller of ``request`` (bearer token or session cookie)."""
    runtime: Runtime = request.app.state.runtime  # (see core.deps.get_db)
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


async def get_principal(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal:
    return await authenticate(request)


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


def requested_tenant(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID:
    """The tenant ``principal`` asks to read (its own, or ``requested`` for staff), before its
    status is known: raises for a tenant it may not ask for."""
    if principal.is_internal:
        if requested is None:
            raise ValidationFailed(
                "Internal users must pass tenant_id", details={"field": "tenant_id"}
            )
        return requested
    if principal.tenant_id is None:
        raise Forbidden("Your account is not linked to a tenant", code="NO_TENANT")
    if requested is not None and requested != principal.tenant_id:
        raise Forbidden("You may only read your own tenant")
    return principal.tenant_id


def checked_tenant_scope(
    principal: Principal, tenant_id: uuid.UUID, status: str | None
) -> TenantScope:
    """The scope of a ``requested_tenant`` whose status is ``status`` (None: no such tenant,
    e.g. read by the caller from the tenant's row on the same connection): raises for an
    unknown or suspended tenant."""
    if status is None:
        if principal.is_internal:
            raise NotFound(f"Tenant {tenant_id} not found", details={"field": "tenant_id"})
        raise Forbidden("Your tenant does not exist", code="NO_TENANT")
    if status == "suspended" and not principal.is_internal:
        raise Forbidden("Your company's account is suspended", code="TENANT_SUSPENDED")
    return _scope(principal, tenant_id)


def _scope(principal: Principal, tenant_id: uuid.UUID) -> TenantScope:
    tenant_id_var.set(str(tenant_id))
    return TenantScope(tenant_id=tenant_id, principal=principal)


_TENANT_STATUS = sa.select(tenants.c.status).where(tenants.c.id == sa.bindparam("tenant_id"))


def tenant_status_call(tenant_id: uuid.UUID) -> Call:
    return _TENANT_STATUS, {"tenant_id": tenant_id}


def tenant_status(conn: Connection, tenant_id: uuid.UUID) -> str | None:
    return conn.execute(*tenant_status_call(tenant_id)).scalar_one_or_none()


def resolve_tenant_scope(
    conn: Connection, principal: Principal, requested: uuid.UUID | None
) -> TenantScope:
    tenant_id = requested_tenant(principal, requested)
    return checked_tenant_scope(principal, tenant_id, tenant_status(conn, tenant_id))


async def cached_tenant_status(cache: Cache, engine: Engine, tenant_id: uuid.UUID) -> str | None:
    """The tenant's status through the read cache (resource ``tenant_status``, dropped with
    every other key of the tenant when a command suspends or reactivates it): a cached
    ``/tenant/*`` read then needs no database round trip at all (profiled: this query and its
    transaction were most of a cached ``/tenant/me``). An unknown tenant is cached as ``""``."""
    key = CacheKey.build("tenant_status", tenant_scope(tenant_id))
    value, _hit = await cached_value(
        cache, engine, key, lambda conn: tenant_status(conn, tenant_id) or "", str.encode
    )
    return value.decode() or None


@dataclass(frozen=True, slots=True)
class Read:
    """What a read route needs once authorization passed: who asks, the engine its queries
    run on (``core.deps.read_db``) and the cache. One dependency instead of several: FastAPI
    resolves every sub-dependency on every request (profiled: most of a cached read)."""

    principal: Principal
    engine: Engine
    cache: Cache

    async def db(self, fn: Callable[[Connection], T], *, other_io: bool = False) -> T:
        return await read_db(self.engine, fn, other_io=other_io)

    async def cached_json(
        self,
        resource: str,
        scope: str,
        params: Mapping[str, object] | None,
        model: type[BaseModel],
        compute: Callable[[Connection], Mapping[str, Any]],
        *,
        exclude_unset: bool = False,
    ) -> Response:
        return await cached_json_async(
            self.cache,
            self.engine,
            resource,
            scope,
            params,
            model,
            compute,
            exclude_unset=exclude_unset,
        )


@dataclass(frozen=True, slots=True)
class TenantRead(Read):
    """A ``/tenant/*`` read: ``scope`` is the one tenant it may show. ``status_checked`` is
    False when the tenant's status (unknown tenant, suspension) is still to be checked: with
    the cache off, ``tenant_json`` checks it on the connection of the answer itself."""

    scope: TenantScope
    status_checked: bool = True

    async def tenant_json(
        self,
        resource: str,
        params: Mapping[str, object] | None,
        model: type[BaseModel],
        compute: Callable[[Connection], Mapping[str, Any]],
        *,
        exclude_unset: bool = False,
    ) -> Response:
        """``cached_json`` under the tenant's scope (its invalidations drop the answer)."""
        if not self.status_checked:
            compute = _after_status_check(self.scope, compute)
        return await self.cached_json(
            resource,
            tenant_scope(self.scope.tenant_id),
            params,
            model,
            compute,
            exclude_unset=exclude_unset,
        )


def _after_status_check(
    scope: TenantScope, compute: Callable[[Connection], Mapping[str, Any]]
) -> Callable[[Connection], Mapping[str, Any]]:
    def checked(conn: Connection) -> Mapping[str, Any]:
        checked_tenant_scope(scope.principal, scope.tenant_id, tenant_status(conn, scope.tenant_id))
        return compute(conn)

    return checked


async def get_tenant_read(
    request: Request,
    tenant_id: Annotated[
        uuid.UUID | None,
        Query(description="Tenant to read (internal users only)"),
    ] = None,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> TenantRead:
    principal = await authenticate(request)
    runtime: Runtime = request.app.state.runtime
    requested = requested_tenant(principal, tenant_id)
    request.state.tenant_id = str(requested)  # for the access log (see get_principal)
    if runtime.cache.backend is None:
        # The cache is off: the status is read on the answer's own connection (one read
        # instead of two: profiled, each read's checkout and hop cost as much as its query).
        scope = _scope(principal, requested)
        return TenantRead(principal, runtime.engine, runtime.cache, scope, status_checked=False)
    status = await cached_tenant_status(runtime.cache, runtime.engine, requested)
    scope = checked_tenant_scope(principal, requested, status)
    return TenantRead(principal, runtime.engine, runtime.cache, scope)


async def _staff_read(request: Request, admin_only: bool) -> Read:
    principal = await authenticate(request)
    if admin_only:
        await require_internal_admin(principal)
    else:
        await require_internal(principal)
    runtime: Runtime = request.app.state.runtime
    return Read(principal, runtime.engine, runtime.cache)


async def get_staff_read(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Read:
    return await _staff_read(request, admin_only=False)


async def get_admin_read(
    request: Request,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Read:
    return await _staff_read(request, admin_only=True)


TenantReadDep = Annotated[TenantRead, Depends(get_tenant_read)]
StaffReadDep = Annotated[Read, Depends(get_staff_read)]  # INTERNAL_ADMIN or INTERNAL_SUPPORT
AdminReadDep = Annotated[Read, Depends(get_admin_read)]  # INTERNAL_ADMIN
