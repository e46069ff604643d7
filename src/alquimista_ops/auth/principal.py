"""The authenticated caller, as read from a verified token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from alquimista_ops.core.schema import GROUPS, INTERNAL_GROUPS


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    email: str | None
    groups: tuple[str, ...]
    tenant_id: uuid.UUID | None
    token_use: str
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def known_groups(self) -> tuple[str, ...]:
        return tuple(g for g in self.groups if g in GROUPS)

    @property
    def is_internal(self) -> bool:
        return any(g in INTERNAL_GROUPS for g in self.groups)

    @property
    def is_internal_admin(self) -> bool:
        return "INTERNAL_ADMIN" in self.groups

    @property
    def is_tenant_admin(self) -> bool:
        return "TENANT_ADMIN" in self.groups
