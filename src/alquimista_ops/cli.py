"""The command-line adapter: ``alquimista-ops``."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from alquimista_ops.aws import cli as aws_cli
from alquimista_ops.commands.cli import worker_command
from alquimista_ops.core import migrate
from alquimista_ops.core.cache import build_cache
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.errors import AppError
from alquimista_ops.core.settings import get_settings, resolve_database_url
from alquimista_ops.usage import cli as usage_cli

app = typer.Typer(help="AlquimistaAI Operational Dashboard", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations and rollback", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data", no_args_is_help=True)
groups_app = typer.Typer(help="Identity groups", no_args_is_help=True)
users_app = typer.Typer(help="Users of the identity provider", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(groups_app, name="groups")
app.add_typer(users_app, name="users")
usage_cli.register(app)  # ingest, aggregate, scheduler, service-keys
app.add_typer(aws_cli.deploy_app, name="deploy")
app.command("smoke-test")(aws_cli.smoke_test)
app.command("worker")(worker_command)

console = Console(stderr=True)


def _engine() -> Any:
    return create_db_engine(get_settings())


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


# -- db --------------------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = get_settings()
    migrate.upgrade(_engine(), settings.db_schema, revision)
    typer.echo(f"database at revision {migrate.current_revision(_engine(), settings.db_schema)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base'")],
) -> None:
    """Revert migrations down to REVISION."""
    settings = get_settings()
    migrate.downgrade(_engine(), settings.db_schema, revision)
    typer.echo(f"database at revision {migrate.current_revision(_engine(), settings.db_schema)}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's current revision."""
    typer.echo(migrate.current_revision(_engine(), get_settings().db_schema) or "empty")


@db_app.command("drop-dashboard")
def db_drop_dashboard(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm the drop")] = False,
) -> None:
    """The deployment document's rollback: drop the five dashboard tables."""
    if not yes:
        _fail(
            "this drops operational_events, tenant_usage_daily, tenant_integrations, "
            "tenant_agents and tenant_users with all their data; pass --yes to confirm",
            2,
        )
    for table in migrate.drop_dashboard_tables(_engine(), get_settings().db_schema):
        typer.echo(f"dropped {table}")


# -- demo ------------------------------------------------------------------------------------
def _print_accounts(accounts: list[tuple[str, str, str]]) -> None:
    typer.echo("Demo sign-in accounts (group, e-mail, password):")
    for group, email, password in accounts:
        typer.echo(f"  {group:<17} {email:<40} {password}")


@demo_app.command("seed")
def demo_seed(
    tenants: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    days: Annotated[int, typer.Option(min=1, max=3650)] = 90,
    seed: Annotated[int, typer.Option()] = 42,
    raw_days: Annotated[
        int, typer.Option(min=0, max=30, help="Recent days kept as raw requests")
    ] = 2,
    reset: Annotated[bool, typer.Option("--reset", help="Delete existing data first")] = False,
) -> None:
    """Load deterministic demo data (tenants, agents, usage, incidents, accounts)."""
    from alquimista_ops.demo import seed as demo

    engine = _engine()
    with engine.begin() as conn:
        if not demo.is_empty(conn):
            if not reset:
                _fail("the database already has tenants; pass --reset to replace them", 2)
            demo.reset(conn)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = demo.seed(
            engine,
            demo.SeedOptions(tenants=tenants, days=days, seed=seed, raw_days=raw_days),
            progress,
        )
    elapsed = time.perf_counter() - started
    build_cache(get_settings()).invalidate_all()  # no cached answer outlives a reseed
    for table, count in report.counts.items():
        typer.echo(f"{table:<22} {count:>10,}")
    typer.echo(f"seeded in {elapsed:.1f} s")
    _print_accounts(report.accounts)


@demo_app.command("accounts")
def demo_accounts() -> None:
    """Print the demo sign-in accounts."""
    from alquimista_ops.demo import seed as demo

    with _engine().connect() as conn:
        _print_accounts(demo.demo_accounts(conn))


# -- identity --------------------------------------------------------------------------------
@groups_app.command("setup")
def groups_setup(
    cognito: Annotated[bool, typer.Option("--cognito", help="In the Cognito user pool")] = False,
    user_pool_id: Annotated[str | None, typer.Option(help="Default: COGNITO_USER_POOL_ID")] = None,
) -> None:
    """Create the four groups (built-in identity provider, or Cognito with --cognito)."""
    from alquimista_ops.auth.service import setup_groups

    if cognito:
        from alquimista_ops.aws.cli import groups_setup_cognito

        groups_setup_cognito(get_settings(), user_pool_id)
        return

    with _engine().begin() as conn:
        for name, created in setup_groups(conn):
            typer.echo(f"{name}: {'created' if created else 'already present'}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
    group: Annotated[str, typer.Option()],
    tenant_id: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option()] = None,
    cognito: Annotated[bool, typer.Option("--cognito", help="In the Cognito user pool")] = False,
    user_pool_id: Annotated[str | None, typer.Option(help="Default: COGNITO_USER_POOL_ID")] = None,
    invite: Annotated[bool, typer.Option(help="Cognito: e-mail the invitation")] = True,
) -> None:
    """Create a user (and, for a tenant group, its tenant_users row)."""
    from alquimista_ops.auth.service import create_local_user

    try:
        tenant = uuid.UUID(tenant_id) if tenant_id else None
    except ValueError:
        _fail(f"--tenant-id is not a UUID: {tenant_id}", 2)
        return
    if cognito:  # --password is then Cognito's temporary password
        from alquimista_ops.aws.cli import users_create_cognito

        users_create_cognito(
            get_settings(),
            user_pool_id,
            email=email,
            name=name,
            group=group,
            tenant_id=tenant,
            temporary_password=password,
            send_invitation=invite,
        )
        return
    try:
        with _engine().begin() as conn:
            account, secret = create_local_user(
                conn, email=email, full_name=name, group=group, tenant_id=tenant, password=password
            )
    except AppError as exc:
        _fail(exc.message, 2)
        return
    typer.echo(f"created {account.email} ({account.group_name}) id={account.id}")
    if password is None:
        typer.echo(f"password: {secret}")


@app.command("token")
def token(
    email: Annotated[str, typer.Option()],
    kind: Annotated[str, typer.Option(help="id or access")] = "id",
    full: Annotated[bool, typer.Option("--json", help="Print the whole token response")] = False,
) -> None:
    """Print a fresh token for a local user (for scripts and curl)."""
    from alquimista_ops.auth.service import token_for_email
    from alquimista_ops.runtime import build_runtime

    runtime = build_runtime()
    if runtime.idp is None:
        _fail("tokens can only be issued with AUTH_MODE=local", 2)
        return
    try:
        with runtime.engine.connect() as conn:
            tokens = token_for_email(conn, runtime.idp, email)
    except AppError as exc:
        _fail(exc.message, 2)
        return
    typer.echo(json.dumps(tokens, indent=2) if full else tokens[f"{kind}_token"])


# -- serving ---------------------------------------------------------------------------------
@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server worker processes (default: WEB_CONCURRENCY, else one per CPU, at most 4)",
            min=1,
        ),
    ] = None,
) -> None:
    """Serve the API and dashboard with a production ASGI server."""
    from alquimista_ops.core.logging import configure_logging
    from alquimista_ops.core.server import default_workers, run_server

    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.commands_on_dynamodb:
        _fail(
            "COMMANDS_TABLE keeps the commands in DynamoDB, for the AWS deployment (Lambda); "
            "unset it or set COMMANDS_BACKEND=sql to serve with PostgreSQL's commands",
            2,
        )
    if workers is None:
        try:
            workers = default_workers()
        except ValueError as exc:
            _fail(str(exc), 2)
            return
    # the workers connect to the database this process resolved (the embedded server it
    # started or joined, or the Aurora secret's): it is in their environment
    os.environ["DATABASE_URL"] = resolve_database_url(settings)
    get_settings.cache_clear()
    run_server(
        "alquimista_ops.app:create_production_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
    )


@app.command("dev")
def dev(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Zero-setup start: the embedded PostgreSQL server (unless DATABASE_URL is set), migrations,
    demo data if the database is empty, the demo accounts, then the server with the command
    worker and the usage scheduler in it."""
    from alquimista_ops.demo import seed as demo

    os.environ["COMMAND_INPROCESS_WORKER"] = "true"
    get_settings.cache_clear()
    settings = get_settings()
    if not settings.database_url:
        typer.echo(f"Starting the embedded PostgreSQL server ({settings.embedded_data_dir})...")
    engine = _engine()
    migrate.upgrade(engine, settings.db_schema)
    with engine.begin() as conn:
        empty = demo.is_empty(conn)
    if empty:
        typer.echo("Loading demo data (first start)...")
        demo.seed(engine, demo.SeedOptions())
    with engine.connect() as conn:
        _print_accounts(demo.demo_accounts(conn))
    typer.echo(f"Dashboard: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    engine.dispose()
    serve(host=host, port=port, workers=1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
