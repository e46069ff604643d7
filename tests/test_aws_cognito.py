"""Cognito administration (groups, custom:tenant_id check, users) against moto."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from alquimista_ops.auth.service import GROUP_DEFINITIONS
from alquimista_ops.aws import cognito
from alquimista_ops.cli import app as cli_app
from alquimista_ops.core.errors import Conflict, NotFound, ValidationFailed
from alquimista_ops.core.schema import tenant_users, tenants
from alquimista_ops.core.settings import Settings, get_settings
from alquimista_ops.demo import seed as demo
from tests.conftest import SEED_TODAY

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("cognito-idp", region_name=REGION)


def make_pool(client: Any, *, tenant_attribute: bool = True) -> str:
    extra: dict[str, Any] = {}
    if tenant_attribute:
        extra["Schema"] = [{"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True}]
    pool = client.create_user_pool(PoolName="alquimista-users-dev", **extra)
    return str(pool["UserPool"]["Id"])


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, engine: Engine
) -> Iterator[dict[str, str]]:
    """Point the command line at the test database (settings come from the environment)."""
    monkeypatch.setenv("DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("ENV", "test")
    get_settings.cache_clear()
    yield {}
    get_settings.cache_clear()


def _a_tenant(engine: Engine) -> uuid.UUID:
    demo.seed(engine, demo.SeedOptions(tenants=2, days=2, seed=11, raw_days=0, today=SEED_TODAY))
    with engine.connect() as conn:
        return uuid.UUID(str(conn.execute(sa.select(tenants.c.id).limit(1)).scalar_one()))


def test_setup_groups_creates_the_four_groups(aws: Any) -> None:
    pool = make_pool(aws)
    report = cognito.setup_groups(aws, pool)
    assert report.groups == [(g.name, "created") for g in GROUP_DEFINITIONS]
    assert report.tenant_attribute_present
    groups = {g["GroupName"]: g for g in aws.list_groups(UserPoolId=pool)["Groups"]}
    assert {name: (g["Description"], g["Precedence"]) for name, g in groups.items()} == {
        "INTERNAL_ADMIN": ("Administradores internos da AlquimistaAI", 1),
        "INTERNAL_SUPPORT": ("Equipe de suporte interno", 2),
        "TENANT_ADMIN": ("Administradores de tenant", 10),
        "TENANT_USER": ("Usuários de tenant", 20),
    }
    # idempotent; a drifted group is brought back to the document's definition
    aws.update_group(UserPoolId=pool, GroupName="TENANT_USER", Description="x", Precedence=99)
    again = dict(cognito.setup_groups(aws, pool).groups)
    assert again["TENANT_USER"] == "updated"
    assert again["INTERNAL_ADMIN"] == "already present"
    tenant_user = aws.get_group(UserPoolId=pool, GroupName="TENANT_USER")["Group"]
    assert tenant_user["Precedence"] == 20


def test_groups_setup_cli_explains_missing_tenant_attribute(
    aws: Any, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = make_pool(aws, tenant_attribute=False)
    result = CliRunner().invoke(cli_app, ["groups", "setup", "--cognito", "--user-pool-id", pool])
    assert result.exit_code == 1
    assert "INTERNAL_ADMIN: created" in result.output
    assert "custom:tenant_id: MISSING" in result.output
    assert "Custom attributes" in result.output
    assert len(aws.list_groups(UserPoolId=pool)["Groups"]) == 4

    ok_pool = make_pool(aws)
    monkeypatch.setenv("COGNITO_USER_POOL_ID", ok_pool)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli_app, ["groups", "setup", "--cognito"])
    assert result.exit_code == 0, result.output
    assert "custom:tenant_id: present" in result.output


def test_create_tenant_user_links_cognito_sub(aws: Any, clean_db: Engine) -> None:
    pool = make_pool(aws)
    cognito.setup_groups(aws, pool)
    tenant_id = _a_tenant(clean_db)
    with clean_db.begin() as conn:
        user = cognito.create_user(
            conn,
            aws,
            pool,
            email="Cliente@Empresa.com",
            full_name="Cliente Teste",
            group="TENANT_ADMIN",
            tenant_id=tenant_id,
            send_invitation=False,
        )
    remote = aws.admin_get_user(UserPoolId=pool, Username=user.username)
    attributes = {a["Name"]: a["Value"] for a in remote["UserAttributes"]}
    assert attributes["custom:tenant_id"] == str(tenant_id)
    assert attributes["email"] == "cliente@empresa.com"
    assert attributes["sub"] == user.sub
    in_group = aws.list_users_in_group(UserPoolId=pool, GroupName="TENANT_ADMIN")["Users"]
    assert [u["Username"] for u in in_group] == [user.username]
    with clean_db.connect() as conn:
        row = conn.execute(
            sa.select(tenant_users).where(tenant_users.c.cognito_sub == user.sub)
        ).one()
    assert (row.tenant_id, row.email, row.role) == (tenant_id, "cliente@empresa.com", "admin")

    with clean_db.begin() as conn, pytest.raises(Conflict):
        cognito.create_user(
            conn,
            aws,
            pool,
            email="cliente@empresa.com",
            full_name="X",
            group="TENANT_USER",
            tenant_id=tenant_id,
        )


def test_create_internal_user_has_no_tenant_row(aws: Any, clean_db: Engine) -> None:
    pool = make_pool(aws)
    cognito.setup_groups(aws, pool)
    with clean_db.begin() as conn:
        user = cognito.create_user(
            conn, aws, pool, email="admin@alquimista.ai", full_name="Admin", group="INTERNAL_ADMIN"
        )
    attributes = {
        a["Name"]: a["Value"]
        for a in aws.admin_get_user(UserPoolId=pool, Username=user.username)["UserAttributes"]
    }
    assert "custom:tenant_id" not in attributes
    groups = aws.admin_list_groups_for_user(UserPoolId=pool, Username=user.username)["Groups"]
    assert [g["GroupName"] for g in groups] == ["INTERNAL_ADMIN"]
    with clean_db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tenant_users)).scalar() == 0


def test_create_user_refusals_leave_no_cognito_user(aws: Any, clean_db: Engine) -> None:
    pool = make_pool(aws)
    cognito.setup_groups(aws, pool)
    bad: list[tuple[dict[str, Any], type[Exception]]] = [
        ({"group": "TENANT_USER", "tenant_id": None}, ValidationFailed),
        ({"group": "TENANT_USER", "tenant_id": uuid.uuid4()}, NotFound),
        ({"group": "INTERNAL_ADMIN", "tenant_id": uuid.uuid4()}, ValidationFailed),
        ({"group": "SUPERUSER", "tenant_id": None}, ValidationFailed),
    ]
    for kwargs, error in bad:
        with clean_db.begin() as conn, pytest.raises(error):
            cognito.create_user(conn, aws, pool, email="u@empresa.com", full_name="U", **kwargs)
    assert aws.list_users(UserPoolId=pool)["Users"] == []

    # a pool without custom:tenant_id cannot hold tenant users
    bare = make_pool(aws, tenant_attribute=False)
    tenant_id = _a_tenant(clean_db)
    with clean_db.begin() as conn, pytest.raises(ValidationFailed, match="custom:tenant_id"):
        cognito.create_user(
            conn,
            aws,
            bare,
            email="u@empresa.com",
            full_name="U",
            group="TENANT_USER",
            tenant_id=tenant_id,
        )
    assert aws.list_users(UserPoolId=bare)["Users"] == []


def test_users_create_cli(aws: Any, clean_db: Engine, cli_env: dict[str, str]) -> None:
    pool = make_pool(aws)
    cognito.setup_groups(aws, pool)
    tenant_id = _a_tenant(clean_db)
    args = ["users", "create", "--cognito", "--user-pool-id", pool, "--no-invite"]
    result = CliRunner().invoke(
        cli_app,
        [
            *args,
            "--email",
            "u@empresa.com",
            "--name",
            "Usuário",
            "--group",
            "TENANT_USER",
            "--tenant-id",
            str(tenant_id),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"tenant={tenant_id}" in result.output
    sub = result.output.split("sub=")[1].split()[0]
    with clean_db.connect() as conn:
        row = conn.execute(sa.select(tenant_users).where(tenant_users.c.cognito_sub == sub)).one()
    assert row.role == "user"

    result = CliRunner().invoke(
        cli_app, [*args, "--email", "x@empresa.com", "--name", "X", "--group", "TENANT_USER"]
    )
    assert result.exit_code == 2
    assert "needs a tenant id" in result.output
