"""Accounts and groups of the built-in identity provider, and sign-in."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.auth import repository
from alquimista_ops.auth.local_idp import LocalAccount, LocalIdentityProvider
from alquimista_ops.auth.passwords import hash_password, verify_password
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from alquimista_ops.core.schema import GROUPS, TENANT_GROUPS, tenant_users, tenants


@dataclass(frozen=True)
class GroupDefinition:
    name: str
    description: str
    precedence: int


# Descriptions and precedences of the deployment document.
GROUP_DEFINITIONS: tuple[GroupDefinition, ...] = (
    GroupDefinition("INTERNAL_ADMIN", "Administradores internos da AlquimistaAI", 1),
    GroupDefinition("INTERNAL_SUPPORT", "Equipe de suporte interno", 2),
    GroupDefinition("TENANT_ADMIN", "Administradores de tenant", 10),
    GroupDefinition("TENANT_USER", "Usuários de tenant", 20),
)

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
INVALID_CREDENTIALS = "Incorrect e-mail or password"


def setup_groups(conn: Connection) -> list[tuple[str, bool]]:
    return [
        (g.name, repository.upsert_group(conn, g.name, g.description, g.precedence))
        for g in GROUP_DEFINITIONS
    ]


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationFailed("Invalid e-mail address", details={"field": "email"})
    return email


def validate_tenant_for_group(conn: Connection, group: str, tenant_id: uuid.UUID | None) -> None:
    """Tenant groups need an existing tenant; internal groups take none."""
    if group not in GROUPS:
        raise ValidationFailed(
            f"Unknown group {group!r}; expected one of {', '.join(GROUPS)}",
            details={"field": "group"},
        )
    if group in TENANT_GROUPS:
        if tenant_id is None:
            raise ValidationFailed(f"{group} needs a tenant id", details={"field": "tenant_id"})
        exists = conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).first()
        if not exists:
            raise NotFound(f"Tenant {tenant_id} does not exist", details={"field": "tenant_id"})
    elif tenant_id is not None:
        raise ValidationFailed(f"{group} takes no tenant id", details={"field": "tenant_id"})


def create_tenant_user_row(
    conn: Connection,
    *,
    tenant_id: uuid.UUID,
    sub: str,
    email: str,
    full_name: str,
    group: str,
    row_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> None:
    """The ``tenant_users`` row linking an identity-provider user to its tenant."""
    duplicate = conn.execute(
        sa.select(tenant_users.c.id).where(
            tenant_users.c.tenant_id == tenant_id, tenant_users.c.email == email
        )
    ).first()
    if duplicate:
        raise Conflict(f"{email} is already a user of this tenant", details={"field": "email"})
    now = now or utcnow()
    conn.execute(
        sa.insert(tenant_users).values(
            id=row_id or uuid.uuid4(),
            tenant_id=tenant_id,
            cognito_sub=sub,
            email=email,
            full_name=full_name,
            role="admin" if group == "TENANT_ADMIN" else "user",
            status="active",
            created_at=now,
            updated_at=now,
        )
    )


def create_local_user(
    conn: Connection,
    *,
    email: str,
    full_name: str,
    group: str,
    tenant_id: uuid.UUID | None = None,
    password: str | None = None,
    account_id: uuid.UUID | None = None,
    tenant_user_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> tuple[LocalAccount, str]:
    """Create a local account (and its tenant_users row); returns it and its password.

    ``account_id``, ``tenant_user_id`` and ``now`` are for deterministic data (the demo seed);
    by default the ids are random and the timestamps the current time.
    """
    email = normalize_email(email)
    full_name = full_name.strip()
    if not full_name:
        raise ValidationFailed("A name is required", details={"field": "name"})
    validate_tenant_for_group(conn, group, tenant_id)
    if repository.get_account_by_email(conn, email):
        raise Conflict(f"A user with e-mail {email} already exists", details={"field": "email"})
    password = password or secrets.token_urlsafe(12)
    if len(password) < 8:
        raise ValidationFailed(
            "Passwords need at least 8 characters", details={"field": "password"}
        )
    account = LocalAccount(account_id or uuid.uuid4(), email, full_name, group, tenant_id)
    now = now or utcnow()
    repository.insert_account(
        conn,
        {
            "id": account.id,
            "email": email,
            "full_name": full_name,
            "password_hash": hash_password(password),
            "group_name": group,
            "tenant_id": tenant_id,
            "enabled": True,
            "created_at": now,
            "updated_at": now,
        },
    )
    if tenant_id is not None:
        create_tenant_user_row(
            conn,
            tenant_id=tenant_id,
            sub=str(account.id),
            email=email,
            full_name=full_name,
            group=group,
            row_id=tenant_user_id,
            now=now,
        )
    return account, password


def _account(row: Any) -> LocalAccount:
    return LocalAccount(row.id, row.email, row.full_name, row.group_name, row.tenant_id)


def sign_in(
    conn: Connection, idp: LocalIdentityProvider, username: str, password: str
) -> dict[str, Any]:
    row = repository.get_account_by_email(conn, username)
    valid = verify_password(row.password_hash if row else None, password)
    if row is None or not valid or not row.enabled:
        raise Unauthorized(INVALID_CREDENTIALS, code="INVALID_CREDENTIALS")
    if row.tenant_id is not None:
        conn.execute(
            sa.update(tenant_users)
            .where(tenant_users.c.cognito_sub == str(row.id))
            .values(last_login_at=utcnow())
        )
    return idp.issue_tokens(_account(row))


def token_for_email(conn: Connection, idp: LocalIdentityProvider, email: str) -> dict[str, Any]:
    row = repository.get_account_by_email(conn, email)
    if row is None:
        raise NotFound(f"No local user with e-mail {email}")
    return idp.issue_tokens(_account(row))
