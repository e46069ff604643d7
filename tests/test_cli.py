"""The identity commands of the CLI: groups setup, users create, token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from alquimista_ops import cli
from alquimista_ops.core.settings import Settings, get_settings
from tests.conftest import auth


class Cli:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
        self.monkeypatch = monkeypatch
        assert settings.database_url is not None
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        monkeypatch.setenv("VAR_DIR", str(settings.var_dir))
        monkeypatch.setenv("DB_SCHEMA", settings.db_schema)

    def __call__(self, *args: str) -> Any:
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(cli.app, list(args))
        finally:
            get_settings.cache_clear()
        result.text = " ".join(result.output.split())  # rich wraps long lines
        return result


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, settings: Settings, clean_db: Engine) -> Iterator[Cli]:
    yield Cli(monkeypatch, settings)


@pytest.fixture
def tenant_id(clean_db: Engine) -> uuid.UUID:
    """One tenant, inserted directly."""
    new_id = uuid.uuid4()
    with clean_db.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO tenants (id, name, name_search, cnpj, segment, plan, status, "
                "mrr_estimate) VALUES (:id, 'Clínica Teste Ltda', 'clinica teste ltda', "
                "'11222333000181', 'saude', 'starter', 'active', 497)"
            ).bindparams(sa.bindparam("id", type_=sa.Uuid())),
            {"id": new_id},
        )
    return new_id


LINKS = "SELECT email, cognito_sub, tenant_id, role, status FROM tenant_users"


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    statement = sa.text(sql)
    for name, value in params.items():
        if isinstance(value, uuid.UUID):
            statement = statement.bindparams(sa.bindparam(name, type_=sa.Uuid()))
    with engine.connect() as conn:
        return list(conn.execute(statement, params))


def test_groups_setup_creates_the_four_groups_once(run: Cli, clean_db: Engine) -> None:
    with clean_db.begin() as conn:
        conn.execute(sa.text("DELETE FROM auth_groups"))
    first = run("groups", "setup")
    assert first.exit_code == 0, first.output
    assert first.text.count(": created") == 4
    second = run("groups", "setup")
    assert second.exit_code == 0
    assert second.text.count(": already present") == 4
    names = [r[0] for r in rows(clean_db, "SELECT name FROM auth_groups ORDER BY precedence")]
    assert names == ["INTERNAL_ADMIN", "INTERNAL_SUPPORT", "TENANT_ADMIN", "TENANT_USER"]


def test_internal_user_takes_no_tenant(run: Cli, clean_db: Engine, tenant_id: uuid.UUID) -> None:
    refused = run(
        "users",
        "create",
        "--email",
        "ops@alquimista.ai",
        "--name",
        "Ops",
        "--group",
        "INTERNAL_SUPPORT",
        "--tenant-id",
        str(tenant_id),
    )
    assert refused.exit_code != 0
    assert "INTERNAL_SUPPORT takes no tenant id" in refused.text
    assert rows(clean_db, "SELECT id FROM auth_users") == []

    created = run(
        "users", "create", "--email", "Ops@Alquimista.ai", "--name", "Ops", "--group",
        "INTERNAL_SUPPORT",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "created ops@alquimista.ai (INTERNAL_SUPPORT)" in created.text
    assert "password: " in created.text  # generated and shown once
    (account,) = rows(clean_db, "SELECT email, group_name, tenant_id FROM auth_users")
    assert (account.email, account.group_name, account.tenant_id) == (
        "ops@alquimista.ai",
        "INTERNAL_SUPPORT",
        None,
    )
    assert rows(clean_db, "SELECT id FROM tenant_users") == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "TENANT_ADMIN needs a tenant id"),
        (["--tenant-id", str(uuid.UUID(int=1))], "does not exist"),
        (["--tenant-id", "acme"], "--tenant-id is not a UUID"),
    ],
    ids=["no-tenant", "unknown-tenant", "bad-uuid"],
)
def test_tenant_group_needs_an_existing_tenant(
    run: Cli, clean_db: Engine, extra: list[str], message: str
) -> None:
    result = run(
        "users", "create", "--email", "boss@acme.com.br", "--name", "Boss", "--group",
        "TENANT_ADMIN", *extra,
    )  # fmt: skip
    assert result.exit_code != 0
    assert message in result.text
    assert rows(clean_db, "SELECT id FROM auth_users") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--email", "x@alquimista.ai", "--name", "X", "--group", "SUPERUSER"], "Unknown group"),
        (
            ["--email", "x@alquimista.ai", "--name", "X", "--group", "INTERNAL_ADMIN",
             "--password", "short"],
            "at least 8 characters",
        ),
        (["--email", "not-an-email", "--name", "X", "--group", "INTERNAL_ADMIN"], "Invalid e-mail"),
        (["--email", "x@alquimista.ai", "--name", "  ", "--group", "INTERNAL_ADMIN"], "name"),
    ],
    ids=["unknown-group", "short-password", "bad-email", "blank-name"],
)  # fmt: skip
def test_users_create_refuses_bad_input(
    run: Cli, clean_db: Engine, args: list[str], message: str
) -> None:
    result = run("users", "create", *args)
    assert result.exit_code != 0
    assert message in result.text
    assert rows(clean_db, "SELECT id FROM auth_users") == []


def test_tenant_user_gets_its_tenant_users_row_and_duplicates_are_refused(
    run: Cli, clean_db: Engine, tenant_id: uuid.UUID
) -> None:
    for group, email in (
        ("TENANT_ADMIN", "gestora@clinica.com.br"),
        ("TENANT_USER", "ana@clinica.com.br"),
    ):
        result = run(
            "users", "create", "--email", email, "--name", "Ana Souza", "--group", group,
            "--tenant-id", str(tenant_id), "--password", "segredo-forte-1",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "password:" not in result.text  # given, so not echoed
    accounts = {
        r.email: r
        for r in rows(clean_db, "SELECT id, email, group_name, tenant_id FROM auth_users")
    }
    links = {
        r.email: r
        for r in rows(
            clean_db, "SELECT email, cognito_sub, tenant_id, role, status FROM tenant_users"
        )
    }
    assert set(accounts) == set(links) == {"gestora@clinica.com.br", "ana@clinica.com.br"}
    for email, role in (("gestora@clinica.com.br", "admin"), ("ana@clinica.com.br", "user")):
        assert str(links[email].tenant_id) == str(tenant_id)
        assert links[email].cognito_sub == str(uuid.UUID(str(accounts[email].id)))
        assert (links[email].role, links[email].status) == (role, "active")

    duplicate = run(
        "users", "create", "--email", "ANA@clinica.com.br", "--name", "Outra Ana", "--group",
        "TENANT_USER", "--tenant-id", str(tenant_id),
    )  # fmt: skip
    assert duplicate.exit_code != 0
    assert "already exists" in duplicate.text
    assert len(rows(clean_db, "SELECT id FROM auth_users")) == 2
    assert len(rows(clean_db, "SELECT id FROM tenant_users")) == 2


def test_token_prints_a_token_the_api_accepts(
    run: Cli, clean_db: Engine, tenant_id: uuid.UUID, client: TestClient
) -> None:
    created = run(
        "users", "create", "--email", "ana@clinica.com.br", "--name", "Ana", "--group",
        "TENANT_USER", "--tenant-id", str(tenant_id),
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    for kind in ("id", "access"):
        printed = run("token", "--email", "ana@clinica.com.br", "--kind", kind)
        assert printed.exit_code == 0, printed.output
        token = printed.output.strip()
        assert token.count(".") == 2
        response = client.get("/tenant/me", headers=auth(token))
        assert response.status_code == 200, response.text
        assert response.json()["id"] == str(tenant_id)
    unknown = run("token", "--email", "nobody@clinica.com.br")
    assert unknown.exit_code != 0
    assert "No local user" in unknown.text


def test_token_json_prints_the_whole_response(
    run: Cli, clean_db: Engine, tenant_id: uuid.UUID, tmp_path: Path
) -> None:
    import json

    run(
        "users", "create", "--email", "ops@alquimista.ai", "--name", "Ops", "--group",
        "INTERNAL_ADMIN",
    )  # fmt: skip
    printed = run("token", "--email", "ops@alquimista.ai", "--json")
    assert printed.exit_code == 0, printed.output
    body = json.loads(printed.output)
    assert set(body) == {"access_token", "id_token", "token_type", "expires_in"}
