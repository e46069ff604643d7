"""Command-line pieces of the AWS adapter, registered in ``alquimista_ops.cli``:
``groups setup --cognito``, ``users create --cognito``, ``deploy validate``, ``smoke-test``."""

from __future__ import annotations

import uuid

import typer

from alquimista_ops.core.errors import AppError
from alquimista_ops.core.settings import Settings


def _pool_id(settings: Settings, pool_id: str | None) -> str:
    resolved = pool_id or settings.cognito_user_pool_id
    if not resolved:
        typer.echo("error: set COGNITO_USER_POOL_ID or pass --user-pool-id", err=True)
        raise typer.Exit(2)
    return resolved


def groups_setup_cognito(settings: Settings, pool_id: str | None) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from alquimista_ops.aws import cognito

    pool = _pool_id(settings, pool_id)
    try:
        report = cognito.setup_groups(cognito.cognito_client(settings.aws_region), pool)
    except (BotoCoreError, ClientError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    for name, action in report.groups:
        typer.echo(f"{name}: {action}")
    if report.tenant_attribute_present:
        typer.echo("custom:tenant_id: present")
        return
    typer.echo("custom:tenant_id: MISSING", err=True)
    typer.echo(cognito.TENANT_ATTRIBUTE_HELP, err=True)
    raise typer.Exit(1)


def users_create_cognito(
    settings: Settings,
    pool_id: str | None,
    *,
    email: str,
    name: str,
    group: str,
    tenant_id: uuid.UUID | None,
    temporary_password: str | None,
    send_invitation: bool,
) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    from alquimista_ops.aws import cognito
    from alquimista_ops.core.db import create_db_engine

    pool = _pool_id(settings, pool_id)
    client = cognito.cognito_client(settings.aws_region)
    engine = create_db_engine(settings)
    try:
        with engine.begin() as conn:
            user = cognito.create_user(
                conn,
                client,
                pool,
                email=email,
                full_name=name,
                group=group,
                tenant_id=tenant_id,
                temporary_password=temporary_password,
                send_invitation=send_invitation,
            )
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    except (BotoCoreError, ClientError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    linked = f" tenant={user.tenant_id}" if user.tenant_id else ""
    typer.echo(f"created Cognito user {user.email} ({user.group}) sub={user.sub}{linked}")
