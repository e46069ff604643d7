from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


class Integration(BaseModel):
    id: uuid.UUID
    type: str
    name: str
    status: str
    last_sync_at: datetime | None
    last_sync_status: str | None
    last_error: str | None
    sync_count: int
    error_count: int
    # Present for TENANT_ADMIN and internal users only; credentials are never returned.
    config: dict[str, Any] | None = None


class Integrations(BaseModel):
    integrations: list[Integration]
