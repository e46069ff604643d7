"""fast queries: the open incidents per severity kept by triggers

The staff landing counted the platform's open incidents on every request (an index-only scan
of the ~2 000 open incidents of the large data set, reading ~4 400 index entries: 0.17 ms of
PostgreSQL, the largest part of the landing's statements). ``open_incidents`` holds how many
incidents (severity warning, error or critical) are open (not resolved) per severity, kept by
triggers on ``operational_events`` in the transaction of every write (as ``tenant_totals``,
migration 0008). Filled here from the rows that exist.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Written out (not imported from the application) so that this revision stays as it is.
_OPEN = "{row}.severity IN ('warning', 'error', 'critical') AND {row}.resolved_at IS NULL"
_CHANGED = (
    "(OLD.severity <> NEW.severity OR (OLD.resolved_at IS NULL) <> (NEW.resolved_at IS NULL))"
)


def _add(row: str, sign: str) -> str:
    """The statement that counts (sign '+') or uncounts ('-') the open incident ``row``."""
    return (
        f"INSERT INTO open_incidents (severity, open) VALUES ({row}.severity, {sign}1)"
        " ON CONFLICT (severity) DO UPDATE SET open = open_incidents.open + excluded.open"
    )


def _triggers() -> list[str]:
    return [
        # the search path of the migration (the application's schema), whoever writes
        "CREATE FUNCTION open_incidents_follow() RETURNS trigger LANGUAGE plpgsql"
        " SET search_path FROM CURRENT AS $$ BEGIN"
        f" IF TG_OP <> 'INSERT' AND {_OPEN.format(row='OLD')} THEN {_add('OLD', '-')};"
        " END IF;"
        f" IF TG_OP <> 'DELETE' AND {_OPEN.format(row='NEW')} THEN {_add('NEW', '+')};"
        " END IF; RETURN NULL; END $$",
        "CREATE FUNCTION open_incidents_clear() RETURNS trigger LANGUAGE plpgsql"
        " SET search_path FROM CURRENT AS $$ BEGIN"
        " UPDATE open_incidents SET open = 0; RETURN NULL; END $$",
        "CREATE TRIGGER open_incidents_follow AFTER INSERT OR DELETE ON operational_events"
        " FOR EACH ROW EXECUTE FUNCTION open_incidents_follow()",
        "CREATE TRIGGER open_incidents_follow_update AFTER UPDATE ON operational_events"
        f" FOR EACH ROW WHEN {_CHANGED} EXECUTE FUNCTION open_incidents_follow()",
        "CREATE TRIGGER open_incidents_clear AFTER TRUNCATE ON operational_events"
        " FOR EACH STATEMENT EXECUTE FUNCTION open_incidents_clear()",
    ]


_FILL = (
    "INSERT INTO open_incidents (severity, open)"
    " SELECT severity, count(*) FROM operational_events"
    f" WHERE {_OPEN.format(row='operational_events')}"
    " GROUP BY severity"
)


def upgrade() -> None:
    op.create_table(
        "open_incidents",
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("open", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("severity", name=op.f("pk_open_incidents")),
    )
    for statement in (_FILL, *_triggers()):
        op.execute(statement)


def downgrade() -> None:
    for trigger in (
        "open_incidents_follow",
        "open_incidents_follow_update",
        "open_incidents_clear",
    ):
        op.execute(f"DROP TRIGGER {trigger} ON operational_events")
    for function in ("open_incidents_follow", "open_incidents_clear"):
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_table("open_incidents")
