"""Command-line pieces of the AWS adapter, registered in ``alquimista_ops.cli``:
``groups setup --cognito``, ``users create --cognito``, ``deploy validate``, ``smoke-test``."""

from __future__ import annotations

import uuid
from typing import Annotated

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


# -- deploy validate / smoke-test ------------------------------------------------------------
deploy_app = typer.Typer(help="AWS deployment checks", no_args_is_help=True)


@deploy_app.command("validate")
def deploy_validate(
    env: Annotated[str, typer.Option("--env", help="Environment name: dev, prod")],
    region: Annotated[str | None, typer.Option(help="Default: AWS_REGION")] = None,
    user_pool_id: Annotated[str | None, typer.Option(help="Default: COGNITO_USER_POOL_ID")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS named profile")] = None,
    database: Annotated[
        bool,
        typer.Option(
            "--database", help="Also check the tables and indexes (DATABASE_URL/AURORA_SECRET_ARN)"
        ),
    ] = False,
) -> None:
    """Check a deployed environment against the deployment document's checklist."""
    import boto3

    from alquimista_ops.aws.checks import report
    from alquimista_ops.aws.validate import DeploymentValidator, database_checks
    from alquimista_ops.core.db import create_db_engine
    from alquimista_ops.core.settings import get_settings

    settings = get_settings()
    session = boto3.Session(profile_name=profile, region_name=region or settings.aws_region)
    validator = DeploymentValidator(
        env, session, user_pool_id=user_pool_id or settings.cognito_user_pool_id
    )
    checks = validator.run()
    if database:
        engine = create_db_engine(settings)
        try:
            checks.extend(database_checks(engine, settings.db_schema))
        finally:
            engine.dispose()
    raise typer.Exit(report(checks, f"deploy validate ({env})"))


def smoke_test(
    base_url: Annotated[str, typer.Option(help="API base URL, e.g. https://abc.execute-api…")],
    token: Annotated[str, typer.Option(help="A tenant user's bearer token")],
    internal_token: Annotated[
        str | None, typer.Option(help="An internal user's bearer token")
    ] = None,
    command_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the test command to finish")
    ] = 60.0,
) -> None:
    """Run the deployment document's functional checks over HTTP against BASE_URL."""
    from alquimista_ops.aws.checks import report
    from alquimista_ops.aws.smoke import SmokeTest

    smoke = SmokeTest(base_url, token, internal_token, command_timeout=command_timeout)
    try:
        checks = smoke.run()
    finally:
        smoke.http.close()
    raise typer.Exit(report(checks, f"smoke test ({base_url})"))
