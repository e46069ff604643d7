"""staff API: per-tenant, per-agent and platform daily usage totals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _measures() -> list[sa.Column[object]]:
    return [
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("response_ms_weighted", sa.Numeric(precision=24, scale=2), nullable=False),
        sa.Column("total_tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(precision=18, scale=6), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "tenant_usage_totals",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        *_measures(),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_usage_totals_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "date", name=op.f("pk_tenant_usage_totals")),
    )
    op.create_index(
        op.f("ix_tenant_usage_totals_date_tenant_id"),
        "tenant_usage_totals",
        ["date", "tenant_id"],
        unique=False,
        postgresql_include=["total_requests"],
    )
    op.create_table(
        "agent_usage_totals",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        *_measures(),
        sa.Column("tenants_with_usage", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_usage_totals_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("agent_id", "date", name=op.f("pk_agent_usage_totals")),
    )
    op.create_index(
        op.f("ix_agent_usage_totals_date"), "agent_usage_totals", ["date"], unique=False
    )
    op.create_table(
        "platform_usage_totals",
        sa.Column("date", sa.Date(), nullable=False),
        *_measures(),
        sa.Column("tenants_with_usage", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("date", name=op.f("pk_platform_usage_totals")),
    )
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
    # Fill the totals from the rollup already present (no-op on an empty database).
    measures = """
        SUM(total_requests), SUM(successful_requests), SUM(failed_requests),
        SUM(avg_response_time_ms * total_requests), SUM(total_tokens_used), SUM(total_cost_usd)
    """
    op.execute(
        "INSERT INTO tenant_usage_totals (tenant_id, date, total_requests, successful_requests,"
        " failed_requests, response_ms_weighted, total_tokens_used, total_cost_usd)"
        f" SELECT tenant_id, date, {measures} FROM tenant_usage_daily GROUP BY tenant_id, date"
    )
    op.execute(
        "INSERT INTO agent_usage_totals (agent_id, date, total_requests, successful_requests,"
        " failed_requests, response_ms_weighted, total_tokens_used, total_cost_usd,"
        " tenants_with_usage)"
        f" SELECT agent_id, date, {measures}, COUNT(DISTINCT tenant_id) FROM tenant_usage_daily"
        " GROUP BY agent_id, date"
    )
    op.execute(
        "INSERT INTO platform_usage_totals (date, total_requests, successful_requests,"
        " failed_requests, response_ms_weighted, total_tokens_used, total_cost_usd,"
        " tenants_with_usage)"
        f" SELECT date, {measures}, COUNT(DISTINCT tenant_id) FROM tenant_usage_daily"
        " GROUP BY date"
    )
    bounds = op.get_bind().execute(sa.text("SELECT MIN(date), MAX(date) FROM tenant_usage_daily"))
    first, last = bounds.one()
    if first is not None:
        month = first.replace(day=1)
        while month <= last:
            following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
            op.get_bind().execute(
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


def downgrade() -> None:
    op.drop_index(
        op.f("ix_tenant_usage_monthly_month_tenant_id"), table_name="tenant_usage_monthly"
    )
    op.drop_table("tenant_usage_monthly")
    op.drop_table("platform_usage_totals")
    op.drop_index(op.f("ix_agent_usage_totals_date"), table_name="agent_usage_totals")
    op.drop_table("agent_usage_totals")
    op.drop_index(op.f("ix_tenant_usage_totals_date_tenant_id"), table_name="tenant_usage_totals")
    op.drop_table("tenant_usage_totals")
