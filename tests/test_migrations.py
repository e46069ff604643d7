"""Migrations upgrade and downgrade cleanly on PostgreSQL, agree with the models,
and the deployment document's rollback (drop the five dashboard tables) needs --yes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from alquimista_ops import cli
from alquimista_ops.core import migrate
from alquimista_ops.core.db import create_db_engine, create_read_database
from alquimista_ops.core.schema import DASHBOARD_TABLES, compared, metadata
from alquimista_ops.core.settings import get_settings, normalize_database_url
from tests.conftest import (
    SCHEMA,
    TEST_DATABASE_URL,
    create_database,
    drop_database,
    make_settings,
    run_reads,
)

ALL_TABLES = set(metadata.tables)


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[tuple[Engine, str]]:
    """An engine on an empty database, and its URL."""
    name, url = create_database()
    engine = create_db_engine(make_settings(tmp_path, url))
    try:
        yield engine, url
    finally:
        engine.dispose()
        drop_database(name)


def table_names(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names(schema=SCHEMA)) - {"alembic_version"}


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": compared}
        )
        return list(compare_metadata(context, metadata))


def test_upgrade_downgrade_and_models_agree(fresh_engine: tuple[Engine, str]) -> None:
    engine, _url = fresh_engine
    assert table_names(engine) == set()
    migrate.upgrade(engine, SCHEMA)
    assert migrate.current_revision(engine, SCHEMA) == migrate.head_revision()
    assert table_names(engine) == ALL_TABLES
    assert differences(engine) == []

    migrate.downgrade(engine, SCHEMA, "base")
    assert migrate.current_revision(engine, SCHEMA) is None
    assert table_names(engine) == set()

    # And up again: the downgrade left nothing behind that gets in the way.
    migrate.upgrade(engine, SCHEMA)
    assert table_names(engine) == ALL_TABLES
    assert differences(engine) == []


def test_check_constraints_agree(fresh_engine: tuple[Engine, str]) -> None:
    """Alembic does not compare check constraints: every enumerated column's check is there."""
    engine, _url = fresh_engine
    migrate.upgrade(engine, SCHEMA)
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in metadata.sorted_tables:
            expected = {str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint)}
            found = {
                str(c["name"]) for c in inspector.get_check_constraints(table.name, schema=SCHEMA)
            }
            assert found == expected, table.name
    with engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.exec_driver_sql("INSERT INTO auth_groups VALUES ('ROOT', 'no such group', 0)")


def test_models_and_migrations_differ_when_they_should(fresh_engine: tuple[Engine, str]) -> None:
    """The agreement check above can fail: a dropped index is reported."""
    engine, _url = fresh_engine
    migrate.upgrade(engine, SCHEMA)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_tenant_usage_daily_date")
    found = differences(engine)
    assert any(d[0] == "add_index" and d[1].name == "ix_tenant_usage_daily_date" for d in found)


def test_postgresql_tables_live_in_the_schema(fresh_engine: tuple[Engine, str]) -> None:
    engine, _url = fresh_engine
    migrate.upgrade(engine, SCHEMA)
    with engine.connect() as conn:
        public = set(sa.inspect(conn).get_table_names(schema="public"))
        assert not public & ALL_TABLES
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("agent_requests", SCHEMA)}
    assert "ix_agent_requests_day_tenant_id_agent_id" in indexes


def run_cli(args: list[str], url: str, var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("VAR_DIR", str(var_dir))
    monkeypatch.setenv("DB_SCHEMA", SCHEMA)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli.app, args)
    finally:
        get_settings.cache_clear()


def test_drop_dashboard_needs_yes_and_drops_exactly_five_tables(
    fresh_engine: tuple[Engine, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, url = fresh_engine
    upgraded = run_cli(["db", "upgrade"], url, tmp_path, monkeypatch)
    assert upgraded.exit_code == 0, upgraded.output
    assert table_names(engine) == ALL_TABLES

    refused = run_cli(["db", "drop-dashboard"], url, tmp_path, monkeypatch)
    assert refused.exit_code != 0
    assert "--yes" in refused.output
    assert table_names(engine) == ALL_TABLES

    dropped = run_cli(["db", "drop-dashboard", "--yes"], url, tmp_path, monkeypatch)
    assert dropped.exit_code == 0, dropped.output
    assert len(DASHBOARD_TABLES) == 5
    assert table_names(engine) == ALL_TABLES - set(DASHBOARD_TABLES)
    for table in DASHBOARD_TABLES:
        assert f"dropped {table}" in dropped.output


def test_cli_downgrade_and_current(
    fresh_engine: tuple[Engine, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, url = fresh_engine
    assert run_cli(["db", "upgrade"], url, tmp_path, monkeypatch).exit_code == 0
    current = run_cli(["db", "current"], url, tmp_path, monkeypatch)
    assert current.output.strip() == migrate.head_revision()
    down = run_cli(["db", "downgrade", "base"], url, tmp_path, monkeypatch)
    assert down.exit_code == 0, down.output
    assert table_names(engine) == set()
    assert run_cli(["db", "current"], url, tmp_path, monkeypatch).output.strip() == "empty"


def test_without_the_right_to_create_pg_trgm_the_search_index_is_left_out(tmp_path: Path) -> None:
    """A role that owns the schema but may not create extensions in the database: migration
    0011 logs and leaves the trigram index out, every other revision applies, the models still
    agree with the database, and the tenant search (the statement that would use the index)
    runs."""
    from alembic import command
    from sqlalchemy.engine import make_url

    from alquimista_ops.tenants import internal_queries

    name, url = create_database()
    role = f"opdash_limited_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
            conn.exec_driver_sql(f'CREATE SCHEMA "{SCHEMA}" AUTHORIZATION "{role}"')
        limited = make_url(normalize_database_url(url)).set(username=role)
        settings = make_settings(tmp_path, limited.render_as_string(False))
        engine = create_db_engine(settings)
        try:
            with engine.begin() as conn:  # migrate.upgrade, but for CREATE SCHEMA (not allowed)
                command.upgrade(migrate._config(conn, SCHEMA), "head")
            assert migrate.current_revision(engine, SCHEMA) == migrate.head_revision()
            with engine.connect() as conn:
                indexes = {i["name"] for i in sa.inspect(conn).get_indexes("tenants", SCHEMA)}
                assert "ix_tenants_name_search" in indexes
                assert "ix_tenants_name_search_trgm" not in indexes
            filters = internal_queries.list_filter("all", None, None, "clinica", None)
            assert filters.name_indexed  # the shape that the index would serve
            rows, total = run_reads(
                create_read_database(settings, engine),
                lambda reads: internal_queries.tenant_page(
                    reads, filters, "name", False, 50, 0, date(2026, 11, 1)
                ),
            )
            assert (rows, total) == ([], 0)
            assert differences(engine) == []
        finally:
            engine.dispose()
    finally:
        admin.dispose()
        drop_database(name)
        server = sa.create_engine(normalize_database_url(TEST_DATABASE_URL))
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
            conn.commit()
        server.dispose()
