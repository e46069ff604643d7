"""fast queries: the staff usage overview's rankings stored per standard period

``usage_period_snapshots`` (one row per period: how many tenants had requests in it) and
``usage_period_rankings`` (its top tenants and agents by requests, with their measures) hold,
for the 7, 30 and 90 days ending today and tomorrow (UTC), what the usage overview ranked on
every read: every tenant's running totals and every agent's days over the period. The
application recomputes them in the transaction that changes the usage totals; until it first
does (the next rollup, or the scheduler's next tick), the overview ranks on the read as before.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_period_snapshots",
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("tenants_with_usage", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "period_start", "period_end", name=op.f("pk_usage_period_snapshots")
        ),
    )
    op.create_table(
        "usage_period_rankings",
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("response_ms_weighted", sa.Numeric(precision=24, scale=2), nullable=False),
        sa.Column("total_tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.CheckConstraint(
            "kind IN ('tenant', 'agent')", name=op.f("ck_usage_period_rankings_kind")
        ),
        sa.CheckConstraint(
            "(kind = 'tenant' AND agent_id IS NULL) OR (kind = 'agent' AND tenant_id IS NULL)",
            name=op.f("ck_usage_period_rankings_one_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_usage_period_rankings_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["period_start", "period_end"],
            ["usage_period_snapshots.period_start", "usage_period_snapshots.period_end"],
            name=op.f("fk_usage_period_rankings_period_start_usage_period_snapshots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_usage_period_rankings_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "period_start", "period_end", "kind", "position", name=op.f("pk_usage_period_rankings")
        ),
    )


def downgrade() -> None:
    op.drop_table("usage_period_rankings")
    op.drop_table("usage_period_snapshots")
