"""fast queries: tenant totals and active deployments kept by triggers

The staff figures grouped every tenant on each request (billing by plan and segment, the
tenant counts of the usage overview) and every activation (active deployments per agent).
``tenant_totals`` (tenants and MRR in cents per plan, segment, status and churned or not) and
``agent_deployments`` (active activations per agent) hold those sums instead, kept by triggers
on ``tenants`` and ``tenant_agents`` in the transaction of every write. Filled here from the
rows that exist. ``ix_tenants_created_at`` serves the figures that read the tenants created
since a period's start.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Written out (not imported from the application) so that this revision stays as it is.
_TENANT_KEY = ("plan", "segment", "status", "churned")
_TENANT_CHANGED = (
    "OLD.plan <> NEW.plan OR OLD.segment <> NEW.segment OR OLD.status <> NEW.status"
    " OR (OLD.churned_at IS NULL) <> (NEW.churned_at IS NULL)"
    " OR OLD.mrr_estimate <> NEW.mrr_estimate"
)
_AGENT_CHANGED = "OLD.status <> NEW.status OR OLD.agent_id <> NEW.agent_id"


def _add_tenant(row: str, sign: str) -> str:
    """The statement that adds (sign '+') or removes ('-') the tenant ``row`` (OLD or NEW)."""
    return (
        "INSERT INTO tenant_totals (plan, segment, status, churned, tenants, mrr_cents)"
        f" VALUES ({row}.plan, {row}.segment, {row}.status, {row}.churned_at IS NOT NULL,"
        f" {sign}1, {sign}CAST(round({row}.mrr_estimate * 100) AS BIGINT))"
        f" ON CONFLICT ({', '.join(_TENANT_KEY)}) DO UPDATE SET"
        " tenants = tenant_totals.tenants + excluded.tenants,"
        " mrr_cents = tenant_totals.mrr_cents + excluded.mrr_cents"
    )


def _add_deployment(row: str, sign: str) -> str:
    return (
        "INSERT INTO agent_deployments (agent_id, active)"
        f" VALUES ({row}.agent_id, {sign}1)"
        " ON CONFLICT (agent_id) DO UPDATE SET active = agent_deployments.active + excluded.active"
    )


def _triggers() -> list[str]:
    def function(name: str, body: str) -> str:
        # the search path of the migration (the application's schema), whoever writes
        return (
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
            f" SET search_path FROM CURRENT AS $$ BEGIN {body} RETURN NULL; END $$"
        )

    return [
        function(
            "tenant_totals_follow",
            f"IF TG_OP <> 'INSERT' THEN {_add_tenant('OLD', '-')}; END IF;"
            f" IF TG_OP <> 'DELETE' THEN {_add_tenant('NEW', '+')}; END IF;",
        ),
        function("tenant_totals_clear", "DELETE FROM tenant_totals;"),
        "CREATE TRIGGER tenant_totals_follow AFTER INSERT OR DELETE ON tenants"
        " FOR EACH ROW EXECUTE FUNCTION tenant_totals_follow()",
        "CREATE TRIGGER tenant_totals_follow_update AFTER UPDATE ON tenants FOR EACH ROW"
        f" WHEN ({_TENANT_CHANGED}) EXECUTE FUNCTION tenant_totals_follow()",
        "CREATE TRIGGER tenant_totals_clear AFTER TRUNCATE ON tenants"
        " FOR EACH STATEMENT EXECUTE FUNCTION tenant_totals_clear()",
        function(
            "agent_deployments_follow",
            "IF TG_OP <> 'INSERT' AND OLD.status = 'active' THEN"
            f" {_add_deployment('OLD', '-')}; END IF;"
            " IF TG_OP <> 'DELETE' AND NEW.status = 'active' THEN"
            f" {_add_deployment('NEW', '+')}; END IF;",
        ),
        function("agent_deployments_clear", "DELETE FROM agent_deployments;"),
        "CREATE TRIGGER agent_deployments_follow AFTER INSERT OR DELETE ON tenant_agents"
        " FOR EACH ROW EXECUTE FUNCTION agent_deployments_follow()",
        "CREATE TRIGGER agent_deployments_follow_update AFTER UPDATE ON tenant_agents"
        f" FOR EACH ROW WHEN ({_AGENT_CHANGED}) EXECUTE FUNCTION agent_deployments_follow()",
        "CREATE TRIGGER agent_deployments_clear AFTER TRUNCATE ON tenant_agents"
        " FOR EACH STATEMENT EXECUTE FUNCTION agent_deployments_clear()",
    ]


_FILL = (
    "INSERT INTO tenant_totals (plan, segment, status, churned, tenants, mrr_cents)"
    " SELECT plan, segment, status, churned_at IS NOT NULL, count(*),"
    " sum(CAST(round(mrr_estimate * 100) AS BIGINT)) FROM tenants"
    " GROUP BY plan, segment, status, churned_at IS NOT NULL",
    "INSERT INTO agent_deployments (agent_id, active)"
    " SELECT agent_id, count(*) FROM tenant_agents WHERE status = 'active' GROUP BY agent_id",
)


def upgrade() -> None:
    op.create_table(
        "tenant_totals",
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("churned", sa.Boolean(), nullable=False),
        sa.Column("tenants", sa.BigInteger(), nullable=False),
        sa.Column("mrr_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "plan", "segment", "status", "churned", name=op.f("pk_tenant_totals")
        ),
    )
    op.create_table(
        "agent_deployments",
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("active", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_deployments")),
    )
    op.create_index(op.f("ix_tenants_created_at"), "tenants", ["created_at"], unique=False)
    for statement in (*_FILL, *_triggers()):
        op.execute(statement)


def downgrade() -> None:
    for table, trigger in (
        ("tenants", "tenant_totals_follow"),
        ("tenants", "tenant_totals_follow_update"),
        ("tenants", "tenant_totals_clear"),
        ("tenant_agents", "agent_deployments_follow"),
        ("tenant_agents", "agent_deployments_follow_update"),
        ("tenant_agents", "agent_deployments_clear"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in (
        "tenant_totals_follow",
        "tenant_totals_clear",
        "agent_deployments_follow",
        "agent_deployments_clear",
    ):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_index(op.f("ix_tenants_created_at"), table_name="tenants")
    op.drop_table("agent_deployments")
    op.drop_table("tenant_totals")
