"""Database migrations (Alembic) and the deployment document's rollback."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.core.db import is_postgres, validate_schema_name
from alquimista_ops.core.schema import DASHBOARD_TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _config(conn: Connection, schema: str | None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    cfg.attributes["schema"] = schema
    return cfg


def _schema_for(engine: Engine, schema: str) -> str | None:
    return validate_schema_name(schema) if is_postgres(engine) else None


def upgrade(engine: Engine, schema: str, revision: str = "head") -> None:
    pg_schema = _schema_for(engine, schema)
    with engine.begin() as conn:
        if pg_schema:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{pg_schema}"')
        command.upgrade(_config(conn, pg_schema), revision)


def downgrade(engine: Engine, schema: str, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(_config(conn, _schema_for(engine, schema)), revision)


def current_revision(engine: Engine, schema: str) -> str | None:
    pg_schema = _schema_for(engine, schema)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table_schema": pg_schema})
        return ctx.get_current_revision()


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def drop_dashboard_tables(engine: Engine, schema: str) -> list[str]:
    """The deployment document's database rollback: drop the five dashboard tables."""
    pg_schema = _schema_for(engine, schema)
    dropped: list[str] = []
    with engine.begin() as conn:
        for table in DASHBOARD_TABLES:
            if pg_schema:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{pg_schema}"."{table}" CASCADE')
            else:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
            dropped.append(table)
    return dropped
