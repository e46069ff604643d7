"""Authentication and authorization dependencies, and tenant scoping.

Tenant scoping lives here and only here: ``TenantReadDep`` resolves which tenant a
``/tenant/*`` request may read, from the token claim for tenant users and from
``?tenant_id=`` for internal users.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from alquimista_ops.auth.local_idp import LocalIdentityProvider
from alquimista_ops.auth.principal import Principal
from alquimista_ops.auth.verifier import TokenVerifier
from alquimista_ops.core.cache import Cache, CacheKey, tenant_scope
from alquimista_ops.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from alquimista_ops.core.http_cache import cached_json, cached_value
from alquimista_ops.core.logging import tenant_id_var, user_sub_var
from alquimista_ops.core.reads import Query as ReadQuery
from alquimista_ops.core.reads import ReadDatabase, Reads
from alquimista_ops.core.schema import tenants
from alquimista_ops.core.settings import Settings


class AuthRuntime(Protocol):
    """What authentication needs of the process's runtime (``alquimista_ops.runtime``)."""

    settings: Settings
    reads: ReadDatabase
    cache: Cache
    verifier: TokenVerifier
    idp: LocalIdentityProvider | None


def auth_runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.runtime
    return runtime


async def get_auth_runtime(request: Request) -> AuthRuntime:
    return auth_runtime(request)


AuthRuntimeDep = Annotated[AuthRuntime, Depends(get_auth_runtime)]


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
    runtime = auth_runtime(request)  # off the app, not a sub-dependency (see core.deps.get_db)
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


TENANT_STATUS = ReadQuery(
    sa.select(tenants.c.status).where(tenants.c.id == sa.bindparam("tenant_id"))
)


async def tenant_status(reads: Reads, tenant_id: uuid.UUID) -> str | None:
    status: str | None = await reads.scalar(TENANT_STATUS, tenant_id=tenant_id)
    return status


async def resolve_tenant_scope(
    reads: Reads, principal: Principal, requested: uuid.UUID | None
) -> TenantScope:
    tenant_id = requested_tenant(principal, requested)
    return checked_tenant_scope(principal, tenant_id, await tenant_status(reads, tenant_id))


async def cached_tenant_status(
    cache: Cache, database: ReadDatabase, tenant_id: uuid.UUID
) -> str | None:
    """The tenant's status through the read cache (resource ``tenant_status``, dropped with
    every other key of the tenant when a command suspends or reactivates it): a cached
    ``/tenant/*`` read then needs no database round trip at all (profiled: this query and its
    transaction were most of a cached ``/tenant/me``). An unknown tenant is cached as ``""``."""

    async def status() -> str:
        async with database.session() as reads:
            return await tenant_status(reads, tenant_id) or ""

    key = CacheKey.build("tenant_status", tenant_scope(tenant_id))
    value, _hit = await cached_value(cache, key, status, str.encode)
    return value.decode() or None


Compute = Callable[[Reads], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Read:
    """What a read route needs once authorization passed: who asks, the event-loop reads
    (``core.reads``) and the cache. One dependency instead of several: FastAPI resolves every
    sub-dependency on every request (profiled: most of a cached read)."""

    principal: Principal
    database: ReadDatabase
    cache: Cache

    async def run(self, compute: Callable[[Reads], Awaitable[T]]) -> T:
        """``compute(reads)`` in a read session of its own (uncached)."""
        async with self.database.session() as reads:
            return await compute(reads)

    async def cached_json(
        self,
        resource: str,
        scope: str,
        params: Mapping[str, object] | None,
        model: type[BaseModel],
        compute: Compute,
        *,
        exclude_unset: bool = False,
    ) -> Response:
        return await cached_json(
            self.cache,
            resource,
            scope,
            params,
            model,
            lambda: self.run(compute),
            exclude_unset=exclude_unset,
        )


@dataclass(frozen=True, slots=True)
class TenantRead(Read):
    """A ``/tenant/*`` read: ``scope`` is the one tenant it may show. ``status_checked`` is
    False when the tenant's status (unknown tenant, suspension) is still to be checked: with
    the cache off, ``tenant_json`` reads it beside the answer, in the same round trip."""

    scope: TenantScope
    status_checked: bool = True

    async def tenant_json(
        self,
        resource: str,
        params: Mapping[str, object] | None,
        model: type[BaseModel],
        compute: Compute,
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


def _after_status_check(scope: TenantScope, compute: Compute) -> Compute:
    async def checked(reads: Reads) -> Mapping[str, Any]:
        status, data = await reads.gather(
            tenant_status(reads, scope.tenant_id), compute(reads), return_exceptions=True
        )
        if isinstance(status, BaseException):
            raise status
        # the status decides first: an unknown or suspended tenant shows nothing
        checked_tenant_scope(scope.principal, scope.tenant_id, status)
        if isinstance(data, BaseException):
            raise data
        return data

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
    runtime = auth_runtime(request)
    requested = requested_tenant(principal, tenant_id)
    request.state.tenant_id = str(requested)  # for the access log (see get_principal)
    if runtime.cache.backend is None:
        # The cache is off: the status is read beside the answer (one round trip, not two).
        scope = _scope(principal, requested)
        return TenantRead(principal, runtime.reads, runtime.cache, scope, status_checked=False)
    status = await cached_tenant_status(runtime.cache, runtime.reads, requested)
    scope = checked_tenant_scope(principal, requested, status)
    return TenantRead(principal, runtime.reads, runtime.cache, scope)


async def _staff_read(request: Request, admin_only: bool) -> Read:
    principal = await authenticate(request)
    if admin_only:
        await require_internal_admin(principal)
    else:
        await require_internal(principal)
    runtime = auth_runtime(request)
    return Read(principal, runtime.reads, runtime.cache)


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
