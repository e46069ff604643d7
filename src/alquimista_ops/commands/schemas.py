"""Request and response models of the command routes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alquimista_ops.core.schema import COMMAND_TYPES


class CommandCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command_type: str = Field(
        description="One of the command types", json_schema_extra={"enum": list(COMMAND_TYPES)}
    )
    tenant_id: uuid.UUID | None = Field(default=None, description="Target tenant")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Per-type parameters (see PRODUCT.md §6)"
    )


class CommandCreated(BaseModel):
    command_id: uuid.UUID
    command_type: str
    status: str
    created_at: datetime


class Command(BaseModel):
    command_id: uuid.UUID
    command_type: str
    status: str
    tenant_id: uuid.UUID | None
    tenant_name: str | None
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
    next_attempt_at: datetime | None
    dead_letter: bool
    expires_at: datetime


class CommandList(BaseModel):
    commands: list[Command]
    total: int
    limit: int
    offset: int
