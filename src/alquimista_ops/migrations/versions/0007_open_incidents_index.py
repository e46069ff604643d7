"""fast queries: a partial index of the open incidents

The staff landing page shows how many incidents are open and how many of those are critical.
It counted them among every incident row (``ix_operational_events_incidents_created_at``), a
number that only grows as incidents are resolved and kept;
``ix_operational_events_open_incidents`` (severity) WHERE severity is warning or worse AND
resolved_at IS NULL holds the open ones alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Written out (not imported from the application) so that this revision stays as it is.
_OPEN_INCIDENT = "severity IN ('warning', 'error', 'critical') AND resolved_at IS NULL"


def upgrade() -> None:
    op.create_index(
        "ix_operational_events_open_incidents",
        "operational_events",
        ["severity"],
        unique=False,
        postgresql_where=sa.text(_OPEN_INCIDENT),
    )


def downgrade() -> None:
    op.drop_index("ix_operational_events_open_incidents", table_name="operational_events")
