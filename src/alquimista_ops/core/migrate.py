"""Database migrations (Alembic) and the deployment document's rollback."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.core.db import validate_schema_name
from alquimista_ops.core.schema import DASHBOARD_TABLES, compared, metadata

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _config(conn: Connection, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    cfg.attributes["schema"] = schema
    # for ``alembic check`` / autogenerate: the models (the migrations import none of the code)
    cfg.attributes["target_metadata"] = metadata
    cfg.attributes["include_object"] = compared
    return cfg


def upgrade(engine: Engine, schema: str, revision: str = "head") -> None:
    schema = validate_schema_name(schema)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        command.upgrade(_config(conn, schema), revision)


def downgrade(engine: Engine, schema: str, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(_config(conn, validate_schema_name(schema)), revision)


def current_revision(engine: Engine, schema: str) -> str | None:
    schema = validate_schema_name(schema)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        return ctx.get_current_revision()


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def drop_dashboard_tables(engine: Engine, schema: str) -> list[str]:
    """The deployment document's database rollback: drop the five dashboard tables."""
    schema = validate_schema_name(schema)
    dropped: list[str] = []
    with engine.begin() as conn:
        for table in DASHBOARD_TABLES:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}"."{table}" CASCADE')
            dropped.append(table)
    return dropped
