"""Command-line adapters of the usage pipeline: ``ingest``, ``aggregate``, ``scheduler`` and
``service-keys``. Registered on the main application by ``register(app)``."""

from __future__ import annotations

import csv
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from alquimista_ops.core.clock import utcnow, utctoday
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.errors import AppError
from alquimista_ops.core.settings import get_settings

console = Console(stderr=True)
service_keys_app = typer.Typer(help="API keys of service principals", no_args_is_help=True)

DEFAULT_BATCH = 10_000


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"{option} must be a date (YYYY-MM-DD): {value}", 2)
        raise AssertionError from None  # unreachable


# -- ingest ----------------------------------------------------------------------------------
def _lines(path: Path, counter: list[int]) -> Iterator[bytes]:
    with path.open("rb") as fh:
        for line in fh:
            counter[0] += len(line)
            yield line


def _jsonl_records(path: Path, counter: list[int]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(_lines(path, counter), start=1):
        if not line.strip():
            continue
        try:
            yield number, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            _fail(f"line {number} is not valid JSON: {exc}", 2)


def _csv_records(path: Path, counter: list[int]) -> Iterator[tuple[int, Any]]:
    from alquimista_ops.usage.ingest import FIELDS

    reader = csv.reader(line.decode("utf-8") for line in _lines(path, counter))
    header = next(reader, None)
    if header is None:
        return
    header = [h.strip() for h in header]
    missing = [f for f in FIELDS if f not in header]
    if missing:
        _fail(f"the CSV header lacks: {', '.join(missing)}", 2)
    for number, values in enumerate(reader, start=2):
        if not values:
            continue
        yield number, dict(zip(header, values, strict=False))


def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    fmt: Annotated[
        str, typer.Option("--format", help="auto (by extension), jsonl or csv")
    ] = "auto",
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Records per transaction")
    ] = DEFAULT_BATCH,
    workers: Annotated[
        int, typer.Option(min=1, max=8, help="Parallel insert connections (PostgreSQL)")
    ] = 2,
) -> None:
    """Import raw agent requests from a JSON Lines or CSV file (same validation as the API).

    Each batch is validated completely and written in its own transaction; the first invalid
    batch stops the import (earlier batches stay; re-running the file is safe: request ids
    already stored are counted as duplicates, never written twice). On PostgreSQL, batches are
    validated in this process while earlier ones are inserted by ``--workers`` connections."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from alquimista_ops.usage.ingest import (
        InvalidBatch,
        References,
        Row,
        Validator,
        insert_rows,
        validate_batch,
    )

    kind = fmt.lower()
    if kind == "auto":
        kind = "csv" if file.suffix.lower() == ".csv" else "jsonl"
    if kind not in {"jsonl", "csv"}:
        _fail("--format must be auto, jsonl or csv", 2)
    settings = get_settings()
    engine = create_db_engine(settings)
    validator = Validator(
        now=utcnow(),
        max_skew_seconds=settings.ingest_max_clock_skew_seconds,
        retention_days=settings.usage_raw_retention_days,
    )
    references = References()
    counter = [0]
    source = _csv_records(file, counter) if kind == "csv" else _jsonl_records(file, counter)
    totals = {"received": 0, "valid": 0, "accepted": 0}
    days: set[date] = set()
    started = time.perf_counter()
    size = file.stat().st_size
    pending: list[Future[int]] = []

    def insert(rows: list[Row]) -> int:
        with engine.begin() as conn:
            return insert_rows(conn, rows)

    def collect(keep: int) -> None:
        while len(pending) > keep:
            totals["accepted"] += pending.pop(0).result()

    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool,
        Progress(
            TextColumn("ingest"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[records]:,} records"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("ingest", total=size, records=0)

        def flush(batch: list[Any], lines: list[int]) -> None:
            offset = totals["received"]
            try:
                with engine.connect() as conn:
                    rows = validate_batch(conn, batch, validator, references, offset)
            except InvalidBatch as exc:
                collect(0)
                progress.stop()
                console.print(
                    f"[red]{len(exc.errors)} invalid record(s) in the batch starting at line "
                    f"{lines[0]}; nothing of that batch was written.[/red]"
                )
                for err in exc.errors[:20]:
                    line = lines[err.index - offset]
                    console.print(f"  line {line} (record {err.index}): {err.field}: {err.reason}")
                if len(exc.errors) > 20:
                    console.print(f"  … and {len(exc.errors) - 20} more")
                duplicates = totals["valid"] - totals["accepted"]
                console.print(
                    f"{totals['accepted']:,} records accepted and {duplicates:,} duplicates "
                    "in earlier batches were kept."
                )
                raise typer.Exit(2) from exc
            totals["received"] += len(batch)
            totals["valid"] += len(rows)
            days.update(row[7] for row in rows)
            pending.append(pool.submit(insert, rows))
            collect(workers)
            progress.update(task, completed=counter[0], records=totals["received"])

        batch: list[Any] = []
        lines: list[int] = []
        for number, record in source:
            batch.append(record)
            lines.append(number)
            if len(batch) >= batch_size:
                flush(batch, lines)
                batch, lines = [], []
        if batch:
            flush(batch, lines)
        collect(0)
        progress.update(task, completed=size, records=totals["received"])
    elapsed = time.perf_counter() - started
    engine.dispose()
    received, accepted = totals["received"], totals["accepted"]
    rate = received / elapsed if elapsed > 0 else 0.0
    typer.echo(
        f"received {received:,}  accepted {accepted:,}  "
        f"duplicates {totals['valid'] - accepted:,}  in {elapsed:.2f} s ({rate:,.0f} records/s)"
    )
    if days:
        typer.echo(
            f"days: {min(days)} to {max(days)} "
            "(run `alquimista-ops aggregate` or wait for the daily rollup)"
        )


# -- aggregate -------------------------------------------------------------------------------
MAX_AGGREGATE_DAYS = 3660


def aggregate(
    day: Annotated[str | None, typer.Option("--date", help="One UTC day (YYYY-MM-DD)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day of a range")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day of a range")] = None,
    tenant_id: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
) -> None:
    """Roll raw requests up into the daily usage table (default: yesterday, UTC).

    Re-running a day rewrites exactly the same rows; days older than the oldest raw day still
    stored (removed by retention) are left as they are."""
    from alquimista_ops.usage.jobs import run_rollup_job

    one = _date(day, "--date")
    first, last = _date(start, "--from"), _date(end, "--to")
    if one and (first or last):
        _fail("use --date, or --from/--to, not both", 2)
    if one:
        first = last = one
    elif first or last:
        if not (first and last):
            _fail("--from and --to go together", 2)
    else:
        first = last = utctoday() - timedelta(days=1)
    assert first is not None and last is not None
    if last < first:
        _fail("--to is before --from", 2)
    if (last - first).days + 1 > MAX_AGGREGATE_DAYS:
        _fail(f"a range holds at most {MAX_AGGREGATE_DAYS} days", 2)
    tenant = None
    if tenant_id:
        try:
            tenant = uuid.UUID(tenant_id)
        except ValueError:
            _fail(f"--tenant-id is not a UUID: {tenant_id}", 2)
    from alquimista_ops.usage.jobs import wire_usage_cache

    wire_usage_cache(get_settings())
    engine = create_db_engine(get_settings())
    days = (last - first).days + 1
    with Progress(
        TextColumn("rollup {task.fields[day]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("rollup", total=days, day="")

        def advance(done_day: date) -> None:
            progress.update(task, advance=1, day=done_day.isoformat())

        try:
            report = run_rollup_job(
                engine, first, last, trigger="cli", tenant_id=tenant, progress=advance
            )
        except Exception as exc:
            progress.stop()
            _fail(f"rollup failed (recorded as a failure event): {exc}")
            return
    engine.dispose()
    r = report.rollup
    typer.echo(
        f"rolled up {first} to {last}: {r.days_rolled} day(s) "
        f"({r.days_skipped} skipped: no raw data kept), {r.rows_read:,} raw requests read, "
        f"{r.rows_written:,} daily rows written, {r.rows_deleted:,} replaced, "
        f"{len(r.tenant_ids)} tenant(s), {report.duration_s:.2f} s"
    )


# -- scheduler -------------------------------------------------------------------------------
def scheduler(
    once: Annotated[bool, typer.Option("--once", help="Tick once and exit")] = False,
    now: Annotated[
        str | None, typer.Option(help="Pretend it is this UTC time (ISO 8601; with --once)")
    ] = None,
) -> None:
    """Run the daily usage rollup schedule (normally inside the worker)."""
    from alquimista_ops.core.clock import utcnow as clock_now
    from alquimista_ops.usage.scheduler import DailyRollupScheduler, run_scheduler_loop

    settings = get_settings()
    from alquimista_ops.usage.jobs import wire_usage_cache

    wire_usage_cache(settings)
    engine = create_db_engine(settings)
    if once:
        at = clock_now()
        if now:
            try:
                at = datetime.fromisoformat(now)
            except ValueError:
                _fail(f"--now is not an ISO 8601 time: {now}", 2)
            if at.tzinfo is None:
                from datetime import UTC

                at = at.replace(tzinfo=UTC)
        result = DailyRollupScheduler(engine, settings).tick(at)
        typer.echo(
            f"{result.outcome.value}"
            + (f" ({result.scheduled_for})" if result.scheduled_for else "")
        )
        if result.report:
            typer.echo(orjson.dumps(result.report.as_dict()).decode())
        if result.error:
            typer.echo(f"error: {result.error}")
        engine.dispose()
        raise typer.Exit(1 if result.error else 0)
    stop = threading.Event()
    typer.echo(
        f"usage scheduler: daily at {settings.usage_rollup_time} UTC, "
        f"tick every {settings.usage_scheduler_interval_seconds:g} s (Ctrl-C to stop)"
    )
    try:
        run_scheduler_loop(stop, engine=engine, settings=settings)
    except KeyboardInterrupt:
        stop.set()
    engine.dispose()


# -- service keys ----------------------------------------------------------------------------
@service_keys_app.command("create")
def service_keys_create(
    name: Annotated[str, typer.Option(help="A unique name, e.g. the calling system")],
    scope: Annotated[list[str] | None, typer.Option(help="Scope (repeatable)")] = None,
) -> None:
    """Create a service principal and print its API key (shown only this once)."""
    from alquimista_ops.auth.service_keys import SCOPE_INGEST_USAGE, create_service_key

    scopes = tuple(scope or (SCOPE_INGEST_USAGE,))
    try:
        with create_db_engine(get_settings()).begin() as conn:
            info, key = create_service_key(conn, name, scopes)
    except AppError as exc:
        _fail(exc.message, 2)
        return
    console.print(
        f"created service key {info.name!r} ({info.key_prefix}, scopes {', '.join(info.scopes)})"
    )
    console.print("store this key now; it is not shown again:")
    typer.echo(key)


@service_keys_app.command("list")
def service_keys_list() -> None:
    """List service principals (never their keys)."""
    from alquimista_ops.auth.service_keys import list_service_keys

    with create_db_engine(get_settings()).connect() as conn:
        keys = list_service_keys(conn)
    for info in keys:
        state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
        typer.echo(f"{info.name:<32} {info.key_prefix:<14} {','.join(info.scopes):<16} {state}")


@service_keys_app.command("revoke")
def service_keys_revoke(name: Annotated[str, typer.Option()]) -> None:
    """Revoke a service principal's key (effective immediately)."""
    from alquimista_ops.auth.service_keys import revoke_service_key

    try:
        with create_db_engine(get_settings()).begin() as conn:
            info = revoke_service_key(conn, name)
    except AppError as exc:
        _fail(exc.message, 2)
        return
    typer.echo(f"revoked {info.name} ({info.key_prefix})")


def register(app: typer.Typer) -> None:
    """Add the usage pipeline's commands to the main ``alquimista-ops`` application."""
    app.command("ingest")(ingest)
    app.command("aggregate")(aggregate)
    app.command("scheduler")(scheduler)
    app.add_typer(service_keys_app, name="service-keys")
