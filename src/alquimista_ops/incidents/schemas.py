from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class Incident(BaseModel):
    id: uuid.UUID
    severity: str
    title: str
    description: str | None
    category: str
    created_at: datetime
    resolved_at: datetime | None


class IncidentCounters(BaseModel):
    open: int
    resolved: int
    critical_open: int


class Incidents(BaseModel):
    incidents: list[Incident]
    total: int
    limit: int
    offset: int
    counters: IncidentCounters
