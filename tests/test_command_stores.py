"""The command store contract, run against both implementations: the SQL store (PostgreSQL)
and the DynamoDB store (moto, the table made from ``layout.commands_table_definition``, the
definition the CDK stack uses too). Effects land in the real relational database either way."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.aws.command_store import DynamoCommandStore, idempotency_id
from alquimista_ops.commands import service
from alquimista_ops.commands.audit import Actor
from alquimista_ops.commands.handlers import HANDLERS, Handler, HandlerContext
from alquimista_ops.commands.model import CommandQuery, CommandRecord, NewCommand
from alquimista_ops.commands.runtime_hooks import STORE_KEY, build_store
from alquimista_ops.commands.store import CommandStore, SqlCommandStore
from alquimista_ops.commands.worker import Worker, WorkerConfig
from alquimista_ops.core.errors import Conflict
from alquimista_ops.core.schema import operational_commands, operational_events, tenant_agents
from alquimista_ops.core.settings import Settings
from alquimista_ops.runtime import Runtime
from tests.commands_support import Tenant, make_tenant
from tests.conftest import auth
from tests.dynamo_support import TABLE, moto_commands_store

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

ADMIN = Actor("00000000-0000-4000-8000-0000000000a1", "admin@alquimista.ai")
URL = "/internal/operations/commands"


@pytest.fixture
def dynamo_store() -> Iterator[DynamoCommandStore]:
    with moto_commands_store() as store:
        yield store


@pytest.fixture(params=["sql", "dynamodb"])
def store(request: pytest.FixtureRequest, clean_db: Engine) -> CommandStore:
    if request.param == "sql":
        return SqlCommandStore()
    dynamo: CommandStore = request.getfixturevalue("dynamo_store")
    return dynamo


@pytest.fixture
def world(clean_db: Engine) -> Tenant:
    return make_tenant(clean_db)


def new_command(
    command_type: str,
    tenant_id: uuid.UUID | None = None,
    parameters: dict[str, Any] | None = None,
    *,
    key: str | None = None,
    max_attempts: int = 5,
    created_at: datetime | None = None,
) -> NewCommand:
    now = created_at or datetime.now(UTC)
    params = parameters or {}
    return NewCommand(
        command_id=uuid.uuid4(),
        command_type=command_type,
        tenant_id=tenant_id,
        parameters=params,
        created_by=ADMIN.user_id,
        created_by_email=ADMIN.email,
        created_at=now,
        max_attempts=max_attempts,
        expires_at=now + timedelta(days=90),
        idempotency_key=key,
        request_hash=service.request_hash(command_type, tenant_id, params),
    )


def create(engine: Engine, store: CommandStore, new: NewCommand) -> CommandRecord:
    with engine.begin() as conn:
        record, created = store.create(conn, new, ADMIN)
    assert created
    return record


def restart(world: Tenant, **kw: Any) -> NewCommand:
    return new_command("RESTART_AGENT", world.id, {"agent_id": str(world.agent_id)}, **kw)


def get(engine: Engine, store: CommandStore, command_id: uuid.UUID) -> CommandRecord:
    with engine.connect() as conn:
        record = store.get(conn, command_id)
    assert record is not None
    return record


def worker(engine: Engine, store: CommandStore, **config: Any) -> Worker:
    handlers: dict[str, Handler] | None = config.pop("handlers", None)
    values: dict[str, Any] = {"listen": False, "backoff_base": 0.0, "backoff_jitter": 0.0}
    values.update(config)
    return Worker(engine, config=WorkerConfig(**values), store=store, handlers=handlers)


def event_types(engine: Engine, command_id: uuid.UUID) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(operational_events.c.event_type)
                .where(operational_events.c.details["command_id"].as_string() == str(command_id))
                .order_by(operational_events.c.created_at)
            ).scalars()
        )


def agent_status(engine: Engine, world: Tenant) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.select(tenant_agents.c.status).where(tenant_agents.c.id == world.activation_id)
            ).scalar_one()
        )


def sql_commands(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(operational_commands)).scalar_one()
        )


def flaky(failures: int) -> Handler:
    calls = {"n": 0}

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        calls["n"] += 1
        output = HANDLERS[ctx.command.command_type](ctx)  # effect written, then rolled back
        if calls["n"] <= failures:
            raise ConnectionError(f"transient failure {calls['n']}")
        return output

    return handler


# -- the contract, both stores ---------------------------------------------------------------
def test_create_get_and_idempotency(store: CommandStore, world: Tenant, clean_db: Engine) -> None:
    first = restart(world, key="key-1")
    record = create(clean_db, store, first)
    assert record.status == "PENDING" and record.attempts == 0
    assert record.tenant_name == "Clínica Teste"
    fetched = get(clean_db, store, record.command_id)
    assert fetched.parameters == {"agent_id": str(world.agent_id)}
    assert fetched.created_at == first.created_at and fetched.tenant_name == "Clínica Teste"
    assert abs((fetched.expires_at - first.expires_at).total_seconds()) < 1

    replay = restart(world, key="key-1")  # same body, new id and time: the first one returns
    with clean_db.begin() as conn:
        again, created = store.create(conn, replay, ADMIN)
    assert not created and again.command_id == record.command_id
    other = new_command("HEALTH_CHECK", key="key-1")
    with pytest.raises(Conflict) as conflict, clean_db.begin() as conn:
        store.create(conn, other, ADMIN)
    assert conflict.value.code == "IDEMPOTENCY_CONFLICT"
    with clean_db.connect() as conn:
        assert store.get(conn, uuid.uuid4()) is None
        assert store.search(conn, CommandQuery())[1] == 1
    assert event_types(clean_db, record.command_id) == ["command.created"]


def test_list_filters_pages_and_true_total(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    other = make_tenant(clean_db, "Outra Clínica")
    base = datetime.now(UTC) - timedelta(minutes=10)
    made = []
    for i, (kind, tenant) in enumerate(
        [
            ("HEALTH_CHECK", world.id),
            ("HEALTH_CHECK", world.id),
            ("CLEAR_CACHE", None),
            ("HEALTH_CHECK", other.id),
            ("HEALTH_CHECK", world.id),
        ]
    ):
        at = base + timedelta(seconds=i)
        made.append(create(clean_db, store, new_command(kind, tenant, created_at=at)))
    with clean_db.begin() as conn:
        assert store.cancel(conn, made[1].command_id, ADMIN) is not None
    newest_first = [r.command_id for r in reversed(made)]

    def search(**kw: Any) -> tuple[list[uuid.UUID], int, list[CommandRecord]]:
        with clean_db.connect() as conn:
            records, total = store.search(conn, CommandQuery(**kw))
        return [r.command_id for r in records], total, records

    ids, total, _ = search(limit=2)
    assert total == 5 and ids == newest_first[:2]
    ids, total, _ = search(limit=2, offset=2)
    assert total == 5 and ids == newest_first[2:4]
    ids, total, _ = search(limit=2, offset=4)
    assert total == 5 and ids == newest_first[4:]
    ids, total, records = search(tenant_id=world.id)
    assert total == 3 and ids == [made[4].command_id, made[1].command_id, made[0].command_id]
    assert {r.tenant_name for r in records} == {"Clínica Teste"}
    ids, total, records = search(command_type="CLEAR_CACHE")
    assert total == 1 and ids == [made[2].command_id] and records[0].tenant_id is None
    ids, total, _ = search(status="PENDING")
    assert total == 4 and made[1].command_id not in ids
    ids, total, _ = search(status="CANCELLED", tenant_id=world.id)
    assert (ids, total) == ([made[1].command_id], 1)
    ids, total, _ = search(status="PENDING", tenant_id=other.id, command_type="HEALTH_CHECK")
    assert (ids, total) == ([made[3].command_id], 1)
    assert search(status="RUNNING")[:2] == ([], 0)


def test_cancel_only_while_pending(store: CommandStore, world: Tenant, clean_db: Engine) -> None:
    pending = create(clean_db, store, new_command("HEALTH_CHECK"))
    with clean_db.begin() as conn:
        cancelled = store.cancel(conn, pending.command_id, ADMIN)
    assert cancelled is not None and cancelled.status == "CANCELLED"
    assert cancelled.completed_at is not None
    with clean_db.begin() as conn:
        assert store.cancel(conn, pending.command_id, ADMIN) is None
        assert store.cancel(conn, uuid.uuid4(), ADMIN) is None
    assert worker(clean_db, store).run_until_idle() == 0

    started = create(clean_db, store, new_command("HEALTH_CHECK"))
    with clean_db.begin() as conn:
        claimed = store.claim(conn, "someone", 10, 30)
    assert [c.command_id for c in claimed] == [started.command_id]
    assert claimed[0].status == "RUNNING" and claimed[0].attempts == 1
    with clean_db.begin() as conn:
        assert store.cancel(conn, started.command_id, ADMIN) is None
    assert get(clean_db, store, started.command_id).status == "RUNNING"
    assert event_types(clean_db, pending.command_id) == ["command.created", "command.cancelled"]


def test_worker_applies_the_effect_and_records_success(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    record = create(clean_db, store, restart(world))
    suspend = create(clean_db, store, new_command("SUSPEND_TENANT", world.id, {"reason": "x"}))
    runner = worker(clean_db, store)
    assert runner.run_until_idle() == 2
    done = get(clean_db, store, record.command_id)
    assert done.status == "SUCCESS" and done.attempts == 1
    assert done.output is not None and done.output["previous_status"] == "error"
    assert done.started_at is not None and done.completed_at is not None
    assert done.lease_owner is None and done.error_message is None
    assert agent_status(clean_db, world) == "active"
    assert get(clean_db, store, suspend.command_id).status == "SUCCESS"
    kinds = event_types(clean_db, record.command_id)
    assert kinds == ["command.created", "command.started", "agent.restarted", "command.succeeded"]
    assert runner.run_until_idle() == 0


def test_transient_failure_retries_then_succeeds(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    record = create(clean_db, store, restart(world))
    runner = worker(clean_db, store, handlers={**HANDLERS, "RESTART_AGENT": flaky(1)})
    assert runner.run_until_idle() >= 1
    state = get(clean_db, store, record.command_id)
    if state.status == "PENDING":  # the retry was not due yet within run_until_idle
        runner.run_until_idle()
        state = get(clean_db, store, record.command_id)
    assert state.status == "SUCCESS" and state.attempts == 2
    kinds = event_types(clean_db, record.command_id)
    assert kinds.count("command.retry_scheduled") == 1 and kinds.count("agent.restarted") == 1
    assert runner.stats.retried == 1 and runner.stats.succeeded == 1


def test_dead_letter_then_redrive(store: CommandStore, world: Tenant, clean_db: Engine) -> None:
    record = create(clean_db, store, restart(world, max_attempts=2))
    runner = worker(clean_db, store, handlers={**HANDLERS, "RESTART_AGENT": flaky(99)})
    runner.run_until_idle()
    state = get(clean_db, store, record.command_id)
    assert state.status == "ERROR" and state.attempts == 2 and state.dead_letter
    assert state.error_message == "ConnectionError: transient failure 2"
    assert agent_status(clean_db, world) == "error"  # no failed attempt left its effect
    with clean_db.connect() as conn:
        assert store.backlog(conn).dead_letters == 1

    redrive = create(
        clean_db, store, new_command("REPROCESS_QUEUE", None, {"queue_name": "commands"})
    )
    worker(clean_db, store).process_once()
    output = get(clean_db, store, redrive.command_id).output
    assert output is not None and output["command_ids"] == [str(record.command_id)]
    state = get(clean_db, store, record.command_id)
    assert state.status == "PENDING" and state.attempts == 0 and state.error_message is None
    worker(clean_db, store).run_until_idle()
    assert get(clean_db, store, record.command_id).status == "SUCCESS"
    assert agent_status(clean_db, world) == "active"
    kinds = event_types(clean_db, record.command_id)
    assert kinds.count("command.redriven") == 1 and kinds[-1] == "command.succeeded"


def test_only_the_lease_holder_records_the_outcome(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    record = create(clean_db, store, restart(world))
    stalled = worker(clean_db, store, lease_seconds=0.2)
    with clean_db.begin() as conn:
        claimed = store.claim(conn, stalled.owner, 10, 0.2)  # then it "hangs"
        assert store.fail(conn, "another-worker", claimed[0], "x", None) is None
        assert store.hold(conn, "another-worker", [record.command_id]) == set()
        assert store.hold(conn, stalled.owner, [record.command_id]) == {record.command_id}
    time.sleep(0.3)
    rescuer = worker(clean_db, store)
    with clean_db.begin() as conn:
        assert store.release_expired(conn) == 1
    assert rescuer.run_until_idle() == 1
    stalled.run_batch(claimed)  # wakes up late: the lease is lost, the effect is not repeated
    assert stalled.stats.lost == 1
    state = get(clean_db, store, record.command_id)
    assert state.status == "SUCCESS" and state.attempts == 2
    kinds = event_types(clean_db, record.command_id)
    assert kinds.count("agent.restarted") == 1 and kinds.count("command.lease_expired") == 1


def test_backlog_counts_due_pending_running_and_dead(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    with clean_db.connect() as conn:
        assert store.backlog(conn).as_dict() == {
            "pending": 0,
            "running": 0,
            "oldest_pending_age_seconds": None,
            "dead_letters": 0,
        }
    create(clean_db, store, new_command("HEALTH_CHECK"))
    create(clean_db, store, new_command("HEALTH_CHECK"))
    with clean_db.begin() as conn:
        store.claim(conn, "w", 1, 30)
    time.sleep(0.05)
    with clean_db.connect() as conn:
        backlog = store.backlog(conn)
    assert (backlog.pending, backlog.running, backlog.dead_letters) == (1, 1, 0)
    assert backlog.oldest_pending_age_seconds is not None
    assert backlog.oldest_pending_age_seconds >= 0.05


# -- DynamoDB only ----------------------------------------------------------------------------
def test_dynamodb_items_never_carry_empty_index_keys(
    dynamo_store: DynamoCommandStore, clean_db: Engine
) -> None:
    record = create(clean_db, dynamo_store, new_command("HEALTH_CHECK", key="k"))
    items = dynamo_store.client.scan(TableName=TABLE)["Items"]
    command = next(i for i in items if i["command_id"]["S"] == str(record.command_id))
    assert "tenant_id" not in command and "lease_owner" not in command
    assert command["status"] == {"S": "PENDING"}
    assert int(command["expires_at"]["N"]) == int(record.expires_at.timestamp())
    marker = next(i for i in items if i["command_id"]["S"] == idempotency_id(ADMIN.user_id, "k"))
    assert "status" not in marker and "tenant_id" not in marker  # in neither index
    description = dynamo_store.client.describe_table(TableName=TABLE)["Table"]
    indexes = {i["IndexName"]: i for i in description["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"tenant_id-created_at-index", "status-created_at-index"}
    assert sql_commands(clean_db) == 0


def test_store_selected_by_settings(tmp_path: Any) -> None:
    base = {"DATABASE_URL": "postgresql://opdash@127.0.0.1:1/unused", "VAR_DIR": str(tmp_path)}
    assert isinstance(build_store(Settings(**base)), SqlCommandStore)  # type: ignore[arg-type]
    on_aws = Settings(**base, COMMANDS_TABLE=TABLE)  # type: ignore[arg-type]
    assert isinstance(build_store(on_aws), DynamoCommandStore)
    forced_sql = Settings(**base, COMMANDS_TABLE=TABLE, COMMANDS_BACKEND="sql")  # type: ignore[arg-type]
    assert isinstance(build_store(forced_sql), SqlCommandStore)
    with pytest.raises(ValueError, match="COMMANDS_TABLE"):
        Settings(**base, COMMANDS_BACKEND="dynamodb")  # type: ignore[arg-type]


@pytest.fixture
def api_on_dynamodb(runtime: Runtime, dynamo_store: DynamoCommandStore) -> Iterator[None]:
    previous = runtime.extras.get(STORE_KEY)
    runtime.extras[STORE_KEY] = dynamo_store
    yield
    if previous is None:
        runtime.extras.pop(STORE_KEY, None)
    else:
        runtime.extras[STORE_KEY] = previous


def test_http_routes_on_the_dynamodb_store(
    api_on_dynamodb: None, client: TestClient, token_for: Any, world: Tenant, clean_db: Engine
) -> None:
    admin = auth(token_for("INTERNAL_ADMIN", sub=uuid.UUID(ADMIN.user_id), email=ADMIN.email))
    body = {"command_type": "HEALTH_CHECK", "tenant_id": str(world.id)}
    created = client.post(URL, json=body, headers={**admin, "Idempotency-Key": "dyn-1"})
    assert created.status_code == 201, created.text
    command_id = created.json()["command_id"]
    replay = client.post(URL, json=body, headers={**admin, "Idempotency-Key": "dyn-1"})
    assert replay.status_code == 200 and replay.json()["command_id"] == command_id
    conflict = client.post(
        URL, json={"command_type": "CLEAR_CACHE"}, headers={**admin, "Idempotency-Key": "dyn-1"}
    )
    assert conflict.status_code == 409
    one = client.get(f"{URL}/{command_id}", headers=admin).json()
    assert one["status"] == "PENDING" and one["tenant_name"] == "Clínica Teste"
    listed = client.get(URL, params={"tenant_id": str(world.id)}, headers=admin).json()
    assert listed["total"] == 1 and listed["commands"][0]["command_id"] == command_id
    cancelled = client.post(f"{URL}/{command_id}/cancel", headers=admin)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert client.post(f"{URL}/{command_id}/cancel", headers=admin).status_code == 409
    assert client.get(URL, params={"status": "PENDING"}, headers=admin).json()["total"] == 0
    assert client.get(URL, params={"offset": 20_000}, headers=admin).status_code == 400
    assert event_types(clean_db, uuid.UUID(command_id)) == ["command.created", "command.cancelled"]
    assert sql_commands(clean_db) == 0


class _LoopWatch:
    """A boto3 client stand-in that forwards every call and notes whether it ran on a thread
    with a running event loop (it must not: boto3 blocks)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, bool]] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop = True
            except RuntimeError:
                on_loop = False
            self.calls.append((name, on_loop))
            return target(*args, **kwargs)

        return call


def test_dynamodb_reads_stay_off_the_event_loop(
    api_on_dynamodb: None,
    dynamo_store: DynamoCommandStore,
    client: TestClient,
    token_for: Any,
    world: Tenant,
    clean_db: Engine,
) -> None:
    """The server reads PostgreSQL on its event loop; the command reads of the DynamoDB store
    (API routes and the operations page) take the thread pool instead."""
    admin_token = token_for("INTERNAL_ADMIN", sub=uuid.UUID(ADMIN.user_id), email=ADMIN.email)
    admin = auth(admin_token)
    body = {"command_type": "HEALTH_CHECK", "tenant_id": str(world.id)}
    created = client.post(URL, json=body, headers={**admin, "Idempotency-Key": "dyn-loop"})
    assert created.status_code == 201, created.text
    watch = _LoopWatch(dynamo_store.client)
    dynamo_store.client = watch
    try:
        assert client.get(URL, headers=admin).json()["total"] == 1
        command_id = created.json()["command_id"]
        assert client.get(f"{URL}/{command_id}", headers=admin).status_code == 200
        page = client.get(
            "/company/operations", headers={"Cookie": f"opdash_session={admin_token}"}
        )
        assert page.status_code == 200, page.text
    finally:
        dynamo_store.client = watch._client
    assert len({name for name, _ in watch.calls}) >= 1
    assert [name for name, on_loop in watch.calls if on_loop] == []


def test_lease_expiry_without_attempts_left_is_a_dead_letter(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    record = create(clean_db, store, restart(world, max_attempts=1))
    with clean_db.begin() as conn:
        assert len(store.claim(conn, "dead-worker", 10, 0.05)) == 1
    time.sleep(0.1)
    with clean_db.begin() as conn:
        assert store.release_expired(conn) == 1
        assert store.release_expired(conn) == 0
    state = get(clean_db, store, record.command_id)
    assert state.status == "ERROR" and state.dead_letter and state.lease_owner is None
    assert "lease expired" in (state.error_message or "")
    kinds = event_types(clean_db, record.command_id)
    assert kinds[-2:] == ["command.lease_expired", "command.failed"]
    assert worker(clean_db, store).run_until_idle() == 0


def test_backlog_age_is_the_oldest_due_command(
    store: CommandStore, world: Tenant, clean_db: Engine
) -> None:
    """What HEALTH_CHECK reports: a retry scheduled for later is not late."""
    retry = create(
        clean_db, store, restart(world, created_at=datetime.now(UTC) - timedelta(days=2))
    )
    with clean_db.begin() as conn:
        (taken,) = store.claim(conn, "w", 10, 30)
        assert taken.command_id == retry.command_id
        later = datetime.now(UTC) + timedelta(hours=1)
        assert store.fail(conn, "w", taken, "x", later) == "PENDING"
    create(
        clean_db,
        store,
        new_command("CLEAR_CACHE", created_at=datetime.now(UTC) - timedelta(hours=2)),
    )
    create(clean_db, store, new_command("HEALTH_CHECK"))
    with clean_db.connect() as conn:
        backlog = store.backlog(conn)
    assert (backlog.pending, backlog.running, backlog.dead_letters) == (3, 0, 0)
    assert backlog.oldest_pending_age_seconds is not None
    assert 7190 <= backlog.oldest_pending_age_seconds <= 7300
    runner = worker(clean_db, store)
    assert runner.run_until_idle() == 2  # the retry is not due
    with clean_db.connect() as conn:
        assert store.backlog(conn).pending == 1
        assert store.backlog(conn).oldest_pending_age_seconds is None
