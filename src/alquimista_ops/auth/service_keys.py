"""Service principals: API keys for machine-to-machine calls (usage ingestion).

A key looks like ``aosk_<prefix>_<secret>``. Only ``key_prefix`` (to find the row) and the
SHA-256 of the whole key are stored; the key is printed once, when created. Keys are random
(256 bits), so a fast hash is enough (no password stretching), and comparison is constant-time.

``ServicePrincipalDep`` authenticates a request with ``Authorization: Bearer <key>`` (or
``X-API-Key: <key>``): a missing, unknown, malformed or revoked key is 401; a valid staff or
tenant user token is 403 (service routes are not for people); a key without the route's scope
is 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.engine import Connection

from alquimista_ops.auth.deps import AuthRuntimeDep, bearer_token
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from alquimista_ops.core.schema import service_principals

KEY_MARK = "aosk"
SCOPE_INGEST_USAGE = "usage:ingest"
KNOWN_SCOPES = (SCOPE_INGEST_USAGE,)

sp = service_principals


@dataclass(frozen=True, slots=True)
class ServicePrincipal:
    id: uuid.UUID
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceKeyInfo:
    id: uuid.UUID
    name: str
    key_prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new key and its prefix."""
    prefix = f"{KEY_MARK}_{secrets.token_hex(4)}"
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def split_key(key: str) -> str | None:
    """The prefix of a well-formed key, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARK or len(parts[1]) != 8 or not parts[2]:
        return None
    return f"{parts[0]}_{parts[1]}"


def _info(row: Any) -> ServiceKeyInfo:
    return ServiceKeyInfo(
        id=row.id,
        name=row.name,
        key_prefix=row.key_prefix,
        scopes=tuple(row.scopes or ()),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


def create_service_key(
    conn: Connection, name: str, scopes: tuple[str, ...] = (SCOPE_INGEST_USAGE,)
) -> tuple[ServiceKeyInfo, str]:
    """Create a service principal; returns it and the key (shown once, never stored)."""
    name = name.strip()
    if not name:
        raise Conflict("A service key needs a name")
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise Conflict(f"Unknown scope(s): {', '.join(unknown)}", details={"known": KNOWN_SCOPES})
    if conn.execute(sa.select(sp.c.id).where(sp.c.name == name)).first():
        raise Conflict(f"A service key named {name!r} already exists")
    key, prefix = generate_key()
    principal_id = uuid.uuid4()
    conn.execute(
        sa.insert(sp).values(
            id=principal_id,
            name=name,
            key_prefix=prefix,
            key_hash=hash_key(key),
            scopes=list(scopes),
            created_at=utcnow(),
        )
    )
    row = conn.execute(sa.select(sp).where(sp.c.id == principal_id)).one()
    return _info(row), key


def revoke_service_key(conn: Connection, name: str) -> ServiceKeyInfo:
    row = conn.execute(sa.select(sp).where(sp.c.name == name)).first()
    if row is None:
        raise NotFound(f"No service key named {name!r}")
    if row.revoked_at is None:
        conn.execute(sa.update(sp).where(sp.c.id == row.id).values(revoked_at=utcnow()))
        row = conn.execute(sa.select(sp).where(sp.c.id == row.id)).one()
    return _info(row)


def list_service_keys(conn: Connection) -> list[ServiceKeyInfo]:
    return [_info(r) for r in conn.execute(sa.select(sp).order_by(sp.c.created_at, sp.c.name))]


def authenticate_key(conn: Connection, key: str) -> ServicePrincipal | None:
    prefix = split_key(key)
    if prefix is None:
        return None
    row = conn.execute(sa.select(sp).where(sp.c.key_prefix == prefix)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return ServicePrincipal(id=row.id, name=row.name, scopes=tuple(row.scopes or ()))


def get_service_principal(
    request: Request, runtime: AuthRuntimeDep, conn: DbDep
) -> ServicePrincipal:
    key = request.headers.get("x-api-key") or bearer_token(request)
    if not key:
        raise Unauthorized("A service API key is required")
    if split_key(key) is None:
        # Not an API key: a valid user token is refused (403), anything else is 401.
        try:
            runtime.verifier.verify(key)
        except Exception as exc:
            raise Unauthorized("Invalid service API key") from exc
        raise Forbidden(
            "This route is for service principals (API keys), not user tokens",
            code="SERVICE_PRINCIPAL_REQUIRED",
        )
    principal = authenticate_key(conn, key)
    if principal is None:
        raise Unauthorized("Invalid or revoked service API key")
    request.state.service_principal = principal
    return principal


def require_scope(scope: str) -> Any:
    def dependency(
        principal: Annotated[ServicePrincipal, Depends(get_service_principal)],
    ) -> ServicePrincipal:
        if scope not in principal.scopes:
            raise Forbidden(f"This service key lacks the {scope!r} scope", code="MISSING_SCOPE")
        return principal

    return dependency


IngestPrincipalDep = Annotated[ServicePrincipal, Depends(require_scope(SCOPE_INGEST_USAGE))]
