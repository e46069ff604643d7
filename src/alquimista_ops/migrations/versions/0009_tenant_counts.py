"""fast queries: each tenant's active agents and users kept by triggers

The staff tenant list counted, for every tenant of the page, its active activations and its
active users (two correlated counts per row). ``tenant_counts`` holds both per tenant, kept by
triggers on ``tenant_agents`` and ``tenant_users`` in the transaction of every write (as
``tenant_totals``, migration 0008). Filled here from the rows that exist. A tenant without a
row has no active agents or users.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Written out (not imported from the application) so that this revision stays as it is.
# (counted table, column of tenant_counts)
_COUNTED = (("tenant_agents", "active_agents"), ("tenant_users", "active_users"))
_CHANGED = "(OLD.status <> NEW.status OR OLD.tenant_id <> NEW.tenant_id)"


def _add(column: str, row: str, sign: str) -> str:
    """The statement that adds (sign '+') or removes ('-') the active row ``row`` (OLD/NEW)."""
    other = "active_users" if column == "active_agents" else "active_agents"
    return (
        f"INSERT INTO tenant_counts (tenant_id, {column}, {other})"
        f" VALUES ({row}.tenant_id, {sign}1, 0)"
        " ON CONFLICT (tenant_id) DO UPDATE SET"
        f" {column} = tenant_counts.{column} + excluded.{column}"
    )


def _triggers() -> list[str]:
    statements = []
    for table, column in _COUNTED:
        follow, clear = f"{column}_follow", f"{column}_clear"
        statements += [
            # the search path of the migration (the application's schema), whoever writes
            f"CREATE FUNCTION {follow}() RETURNS trigger LANGUAGE plpgsql"
            " SET search_path FROM CURRENT AS $$ BEGIN"
            f" IF TG_OP <> 'INSERT' AND OLD.status = 'active' THEN {_add(column, 'OLD', '-')};"
            " END IF;"
            f" IF TG_OP <> 'DELETE' AND NEW.status = 'active' THEN {_add(column, 'NEW', '+')};"
            " END IF; RETURN NULL; END $$",
            f"CREATE FUNCTION {clear}() RETURNS trigger LANGUAGE plpgsql"
            " SET search_path FROM CURRENT AS $$ BEGIN"
            f" UPDATE tenant_counts SET {column} = 0; RETURN NULL; END $$",
            f"CREATE TRIGGER {follow} AFTER INSERT OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION {follow}()",
            f"CREATE TRIGGER {follow}_update AFTER UPDATE ON {table}"
            f" FOR EACH ROW WHEN {_CHANGED} EXECUTE FUNCTION {follow}()",
            f"CREATE TRIGGER {clear} AFTER TRUNCATE ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {clear}()",
        ]
    return statements


_FILL = (
    "INSERT INTO tenant_counts (tenant_id, active_agents, active_users)"
    " SELECT tenant_id, sum(agents), sum(users) FROM ("
    " SELECT tenant_id, 1 AS agents, 0 AS users FROM tenant_agents WHERE status = 'active'"
    " UNION ALL"
    " SELECT tenant_id, 0, 1 FROM tenant_users WHERE status = 'active') AS active"
    " GROUP BY tenant_id"
)


def upgrade() -> None:
    op.create_table(
        "tenant_counts",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("active_agents", sa.BigInteger(), nullable=False),
        sa.Column("active_users", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_counts")),
    )
    for statement in (_FILL, *_triggers()):
        op.execute(statement)


def downgrade() -> None:
    for table, column in _COUNTED:
        for trigger in (f"{column}_follow", f"{column}_follow_update", f"{column}_clear"):
            op.execute(f"DROP TRIGGER {trigger} ON {table}")
        for function in (f"{column}_follow", f"{column}_clear"):
            op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("tenant_counts")
