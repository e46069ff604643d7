"""fast queries: per-tenant running usage totals replace the monthly request totals

``tenant_usage_cumulative`` (tenant, date) holds each tenant's measures summed over every day up
to that date (prefix sums of ``tenant_usage_totals``), so a tenant's figures over any period are
two rows; ranking every tenant over a period reads two index ranges of the covering
(date, tenant_id) index. An index on tenant_agents (status, agent_id) lets the active
activations be counted without reading the wide rows. ``tenant_usage_monthly`` served only
that ranking and is dropped. Filled here from the totals that exist.

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

# The fill: the statements that the application's refresh of the running totals
# (``usage.totals.refresh_cumulative``) ran at this revision into the new, empty table, written
# out (not imported from the application) so that this revision stays as it is.
_NAMES = (
    "total_requests",
    "successful_requests",
    "failed_requests",
    "response_ms_weighted",
    "total_tokens_used",
    "total_cost_usd",
)
_FROM = "usage_cumulative_from"  # scratch: (tenant_id, from_date) of the rows to write
_BASE = ", ".join(f"b.{n} AS base_{n}" for n in _NAMES)
_RUNNING = ", ".join(f"COALESCE(f.base_{n}, 0) + SUM(COALESCE(t.{n}, 0)) OVER w" for n in _NAMES)
_FILL_FROM = (
    f"CREATE TEMPORARY TABLE {_FROM} AS SELECT g.tenant_id, g.from_date, {_BASE}"
    " FROM (SELECT tenant_id, MIN(from_date) AS from_date"
    "       FROM (SELECT tenant_id, MIN(date) AS from_date FROM tenant_usage_totals"
    " GROUP BY tenant_id) AS f GROUP BY tenant_id) AS g"
    " LEFT JOIN tenant_usage_cumulative b ON b.tenant_id = g.tenant_id"
    "  AND b.date = CAST(g.from_date AS DATE) - 1"
)
_FILL_CLEAR = (
    "DELETE FROM tenant_usage_cumulative WHERE (tenant_id, date) IN ("
    " SELECT c.tenant_id, c.date FROM tenant_usage_cumulative c"
    f" JOIN {_FROM} f ON f.tenant_id = c.tenant_id AND c.date >= f.from_date)"
)
_FILL_INSERT = (
    "WITH RECURSIVE days(date) AS (SELECT CAST(g AS DATE) FROM generate_series("
    "CAST(:first AS DATE), CAST(:last AS DATE), INTERVAL '1 day') AS g)"
    f" INSERT INTO tenant_usage_cumulative (tenant_id, date, {', '.join(_NAMES)})"
    f" SELECT f.tenant_id, d.date, {_RUNNING}"
    f" FROM {_FROM} f JOIN days d ON d.date >= f.from_date"
    " LEFT JOIN tenant_usage_totals t ON t.tenant_id = f.tenant_id AND t.date = d.date"
    " WINDOW w AS (PARTITION BY f.tenant_id ORDER BY d.date)"
)


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
    # Fill from the totals already present (no-op on an empty database).
    bind = op.get_bind()
    first, last = bind.execute(
        sa.text("SELECT MIN(date), MAX(date) FROM tenant_usage_totals")
    ).one()
    if first is not None:
        _fill(bind, first, last)
    op.drop_index(
        op.f("ix_tenant_usage_monthly_month_tenant_id"), table_name="tenant_usage_monthly"
    )
    op.drop_table("tenant_usage_monthly")


def _fill(bind: sa.Connection, first: date, last: date) -> None:
    """Write each tenant's running totals for every day from its first day with totals through
    ``last`` (the last day with totals; ``first``, the first, starts the series of days)."""
    bind.exec_driver_sql(f"DROP TABLE IF EXISTS {_FROM}")
    bind.execute(sa.text(_FILL_FROM))
    bind.execute(sa.text(_FILL_CLEAR))  # nothing to delete in the new table, as it ran then
    bind.execute(
        sa.text(_FILL_INSERT).bindparams(
            sa.bindparam("first", type_=sa.Date()), sa.bindparam("last", type_=sa.Date())
        ),
        {"first": first, "last": last},
    )
    bind.exec_driver_sql(f"DROP TABLE {_FROM}")


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
        month = first.replace(day=1)
        while month <= last:
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
