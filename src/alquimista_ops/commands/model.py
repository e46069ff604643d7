"""Plain values shared by the command store implementations, the handlers and the worker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = ("SUCCESS", "ERROR", "CANCELLED")


@dataclass(frozen=True)
class CommandRecord:
    command_id: uuid.UUID
    command_type: str
    status: str
    tenant_id: uuid.UUID | None
    parameters: dict[str, Any]
    created_by: str
    created_by_email: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    output: dict[str, Any] | None
    error_message: str | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    idempotency_key: str | None
    request_hash: str | None
    expires_at: datetime
    tenant_name: str | None = None

    @property
    def dead_letter(self) -> bool:
        return self.status == "ERROR" and self.attempts >= self.max_attempts


@dataclass(frozen=True)
class NewCommand:
    command_id: uuid.UUID
    command_type: str
    tenant_id: uuid.UUID | None
    parameters: dict[str, Any]
    created_by: str
    created_by_email: str | None
    created_at: datetime
    max_attempts: int
    expires_at: datetime
    idempotency_key: str | None
    request_hash: str | None


@dataclass(frozen=True)
class CommandQuery:
    status: str | None = None
    command_type: str | None = None
    tenant_id: uuid.UUID | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class Backlog:
    pending: int
    running: int
    oldest_pending_age_seconds: float | None
    dead_letters: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "running": self.running,
            "oldest_pending_age_seconds": self.oldest_pending_age_seconds,  # due ones only
            "dead_letters": self.dead_letters,
        }
