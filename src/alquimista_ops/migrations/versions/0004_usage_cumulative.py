"""fast queries: per-tenant running usage totals replace the monthly request totals

``tenant_usage_cumulative`` (tenant, date) holds each tenant's measures summed over every day up
to that date (prefix sums of ``tenant_usage_totals``), so a tenant's figures over any period are
two rows; ranking every tenant over a period reads two index ranges of the covering
(date, tenant_id) index. An index on tenant_agents (status, agent_id) lets the active
activations be counted without reading the wide rows. ``tenant_usage_monthly`` served only that ranking and is dropped.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_usage_cumulative",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("response_ms_weighted", sa.Numeric(precision=24, scale=2), nullable=False),
        sa.Column("total_tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(precision=18, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_usage_cumulative_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "date", name=op.f("pk_tenant_usage_cumulative")),
    )
    op.create_index(
        op.f("ix_tenant_usage_cumulative_date_tenant_id"),
        "tenant_usage_cumulative",
        ["date", "tenant_id"],
        unique=False,
        postgresql_include=["total_requests"],
    )
    op.create_index(
        op.f("ix_tenant_agents_status_agent_id"),
        "tenant_agents",
        ["status", "agent_id"],
        unique=False,
    )
    # Fill from the totals already present (no-op on an empty database): the same refresh the
    # rollup runs, from an empty table.
    from alquimista_ops.usage.totals import refresh_cumulative

    bind = op.get_bind()
    bounds = bind.execute(sa.text("SELECT MIN(date), MAX(date) FROM tenant_usage_totals")).one()
    if bounds[0] is not None:
        refresh_cumulative(bind, _as_date(bounds[0]), _as_date(bounds[1]))
    op.drop_index(
        op.f("ix_tenant_usage_monthly_month_tenant_id"), table_name="tenant_usage_monthly"
    )
    op.drop_table("tenant_usage_monthly")


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def downgrade() -> None:
    op.create_table(
        "tenant_usage_monthly",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_usage_monthly_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "month", name=op.f("pk_tenant_usage_monthly")),
    )
    op.create_index(
        op.f("ix_tenant_usage_monthly_month_tenant_id"),
        "tenant_usage_monthly",
        ["month", "tenant_id"],
        unique=False,
        postgresql_include=["total_requests"],
    )
    bind = op.get_bind()
    first, last = bind.execute(
        sa.text("SELECT MIN(date), MAX(date) FROM tenant_usage_totals")
    ).one()
    if first is not None:
        month, last_day = _as_date(first).replace(day=1), _as_date(last)
        while month <= last_day:
            following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
            bind.execute(
                sa.text(
                    "INSERT INTO tenant_usage_monthly (tenant_id, month, total_requests)"
                    " SELECT tenant_id, :month, SUM(total_requests) FROM tenant_usage_totals"
                    " WHERE date >= :month AND date < :following GROUP BY tenant_id"
                ).bindparams(
                    sa.bindparam("month", type_=sa.Date()),
                    sa.bindparam("following", type_=sa.Date()),
                ),
                {"month": month, "following": following},
            )
            month = following
    op.drop_index(
        op.f("ix_tenant_usage_cumulative_date_tenant_id"), table_name="tenant_usage_cumulative"
    )
    op.drop_table("tenant_usage_cumulative")
    op.drop_index(op.f("ix_tenant_agents_status_agent_id"), table_name="tenant_agents")
