"""SQL for the built-in identity provider's accounts and groups."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import auth_groups, auth_users


def get_account_by_email(conn: Connection, email: str) -> Any:
    return conn.execute(
        sa.select(auth_users).where(auth_users.c.email == email.strip().lower())
    ).first()


def insert_account(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(sa.insert(auth_users).values(**values))


def upsert_group(conn: Connection, name: str, description: str, precedence: int) -> bool:
    """Create or update a group; True when it was created."""
    existing = conn.execute(sa.select(auth_groups.c.name).where(auth_groups.c.name == name)).first()
    if existing:
        conn.execute(
            sa.update(auth_groups)
            .where(auth_groups.c.name == name)
            .values(description=description, precedence=precedence)
        )
        return False
    conn.execute(
        sa.insert(auth_groups).values(name=name, description=description, precedence=precedence)
    )
    return True
