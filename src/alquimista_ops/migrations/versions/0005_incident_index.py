"""fast queries: a partial index of the incidents in time order

The staff landing page shows the latest incidents of every tenant and the platform's incident
counters. Without an index on the incident rows by time, PostgreSQL read and sorted every
incident to keep the newest eight, and read every event row to count them;
``ix_operational_events_incidents_created_at`` (created_at, id) INCLUDE (severity, resolved_at)
WHERE severity is warning or worse gives the newest from the index end and the counts from the
index alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Written out (not imported from the application) so that this revision stays as it is.
_INCIDENT = "severity IN ('warning', 'error', 'critical')"


def upgrade() -> None:
    op.create_index(
        "ix_operational_events_incidents_created_at",
        "operational_events",
        ["created_at", "id"],
        unique=False,
        postgresql_include=["severity", "resolved_at"],
        postgresql_where=sa.text(_INCIDENT),
    )


def downgrade() -> None:
    op.drop_index("ix_operational_events_incidents_created_at", table_name="operational_events")
