"""``process_command``, the DynamoDB stream handler: batches of stream records (the Lambda event
format, images read from the moto table) run the real handlers against PostgreSQL; redelivered
records do nothing twice; failures are reported as partial batch failures and retried."""

from __future__ import annotations

import os

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")

import itertools
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alquimista_ops.aws import jobs, lambda_runtime
from alquimista_ops.aws.command_store import DynamoCommandStore, idempotency_id, ts
from alquimista_ops.commands.handlers import HANDLERS, HandlerContext
from alquimista_ops.commands.model import CommandRecord
from alquimista_ops.commands.runtime_hooks import STORE_KEY
from alquimista_ops.core.schema import tenants
from alquimista_ops.runtime import Runtime
from tests.commands_support import Tenant, make_tenant
from tests.dynamo_support import TABLE, moto_commands_store
from tests.test_command_stores import (
    ADMIN,
    agent_status,
    create,
    event_types,
    get,
    new_command,
    restart,
    sql_commands,
)

URL = "/internal/operations/commands"
_sequence = itertools.count(100_000_000_000_000_000_000)


@dataclass
class FakeContext:
    aws_request_id: str = "11111111-2222-4333-8444-555555555555"
    function_name: str = "alquimista-process-command-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:alquimista-process-command-test"
    )

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def world(clean_db: Engine) -> Tenant:
    return make_tenant(clean_db)


@pytest.fixture
def store(runtime: Runtime, clean_db: Engine) -> Iterator[DynamoCommandStore]:
    """The Lambda runtime with its commands on the (moto) DynamoDB table."""
    previous = runtime.extras.get(STORE_KEY)
    with moto_commands_store() as dynamo:
        runtime.extras[STORE_KEY] = dynamo
        lambda_runtime.use_runtime(runtime)
        yield dynamo
    lambda_runtime.use_runtime(None)
    if previous is None:
        runtime.extras.pop(STORE_KEY, None)
    else:
        runtime.extras[STORE_KEY] = previous


def item_of(store: DynamoCommandStore, record: CommandRecord) -> dict[str, Any]:
    key = {"command_id": {"S": str(record.command_id)}, "created_at": {"S": ts(record.created_at)}}
    item: dict[str, Any] = store.client.get_item(TableName=TABLE, Key=key)["Item"]
    return item


def stream_record(
    image: dict[str, Any], event_name: str = "INSERT", old: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": time.time(),
        "Keys": {"command_id": image["command_id"], "created_at": image["created_at"]},
        "SequenceNumber": str(next(_sequence)),
        "SizeBytes": 256,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if event_name != "REMOVE":
        body["NewImage"] = image
    if old is not None:
        body["OldImage"] = old
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/x",
    }


def inserted(store: DynamoCommandStore, engine: Engine, new: Any) -> tuple[CommandRecord, Any]:
    """Create a command and the stream record its INSERT produces."""
    record = create(engine, store, new)
    return record, stream_record(item_of(store, record))


def invoke(*records: dict[str, Any]) -> list[str]:
    response = jobs.process_command({"Records": list(records)}, FakeContext())
    assert set(response) == {"batchItemFailures"}
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def failing(attempts: int) -> Any:
    """RESTART_AGENT failing transiently in its first ``attempts`` attempts."""
    original = HANDLERS["RESTART_AGENT"]

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        output = original(ctx)  # the effect is written, then rolled back
        if ctx.command.attempts <= attempts:
            raise ConnectionError(f"transient failure {ctx.command.attempts}")
        return output

    return handler


def test_batch_of_inserts_runs_the_commands(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine
) -> None:
    agent, agent_insert = inserted(store, clean_db, restart(world))
    suspend, suspend_insert = inserted(
        store, clean_db, new_command("SUSPEND_TENANT", world.id, {"reason": "fraude"})
    )
    health, health_insert = inserted(store, clean_db, new_command("HEALTH_CHECK", world.id))
    assert invoke(agent_insert, suspend_insert, health_insert) == []
    for record in (agent, suspend, health):
        state = get(clean_db, store, record.command_id)
        assert state.status == "SUCCESS" and state.attempts == 1 and state.lease_owner is None
    assert agent_status(clean_db, world) == "active"
    with clean_db.connect() as conn:
        status = conn.execute(sa.select(tenants.c.status).where(tenants.c.id == world.id))
        assert status.scalar_one() == "suspended"
    assert get(clean_db, store, health.command_id).output is not None
    kinds = event_types(clean_db, agent.command_id)
    assert kinds == ["command.created", "command.started", "agent.restarted", "command.succeeded"]


def test_redelivered_record_does_nothing_twice(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine
) -> None:
    agent, agent_insert = inserted(store, clean_db, restart(world))
    assert invoke(agent_insert) == []
    first = get(clean_db, store, agent.command_id)
    assert invoke(agent_insert) == []  # the same record again (at-least-once delivery)
    assert invoke(agent_insert, agent_insert) == []
    again = get(clean_db, store, agent.command_id)
    assert again.status == "SUCCESS" and again.attempts == 1
    assert again.completed_at == first.completed_at
    kinds = event_types(clean_db, agent.command_id)
    assert kinds.count("command.started") == 1 and kinds.count("agent.restarted") == 1


def test_transient_failure_is_reported_then_retried(
    store: DynamoCommandStore,
    world: Tenant,
    clean_db: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(HANDLERS, "RESTART_AGENT", failing(1))
    agent, agent_insert = inserted(store, clean_db, restart(world))
    health, health_insert = inserted(store, clean_db, new_command("HEALTH_CHECK"))
    assert invoke(agent_insert, health_insert) == [agent_insert["dynamodb"]["SequenceNumber"]]
    state = get(clean_db, store, agent.command_id)
    assert state.status == "PENDING" and state.attempts == 1
    assert state.error_message == "ConnectionError: transient failure 1"
    assert agent_status(clean_db, world) == "error"  # the failed attempt left no effect
    assert get(clean_db, store, health.command_id).status == "SUCCESS"
    # Lambda delivers the batch again from the reported record on
    assert invoke(agent_insert, health_insert) == []
    state = get(clean_db, store, agent.command_id)
    assert state.status == "SUCCESS" and state.attempts == 2 and state.error_message is None
    assert agent_status(clean_db, world) == "active"
    assert event_types(clean_db, health.command_id).count("command.started") == 1
    kinds = event_types(clean_db, agent.command_id)
    assert kinds.count("command.retry_scheduled") == 1 and kinds.count("agent.restarted") == 1


def test_out_of_attempts_ends_in_the_dead_letters(
    store: DynamoCommandStore,
    world: Tenant,
    clean_db: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(HANDLERS, "RESTART_AGENT", failing(99))
    agent, agent_insert = inserted(store, clean_db, restart(world, max_attempts=2))
    assert invoke(agent_insert) == [agent_insert["dynamodb"]["SequenceNumber"]]
    assert invoke(agent_insert) == []  # last attempt failed: ERROR, not retried again
    state = get(clean_db, store, agent.command_id)
    assert state.status == "ERROR" and state.attempts == 2 and state.dead_letter
    assert invoke(agent_insert) == []
    assert get(clean_db, store, agent.command_id).attempts == 2


def test_other_records_are_ignored(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine
) -> None:
    agent, agent_insert = inserted(store, clean_db, restart(world, key="k-1"))
    image = agent_insert["dynamodb"]["NewImage"]
    modified = stream_record(image, "MODIFY", old=image)
    removed = stream_record(image, "REMOVE", old=image)
    finished = stream_record({**image, "status": {"S": "SUCCESS"}})
    marker_key = {
        "command_id": {"S": idempotency_id(ADMIN.user_id, "k-1")},
        "created_at": {"S": "-"},
    }
    marker = store.client.get_item(TableName=TABLE, Key=marker_key)["Item"]
    assert invoke(modified, removed, finished, stream_record(marker)) == []
    state = get(clean_db, store, agent.command_id)
    assert state.status == "PENDING" and state.attempts == 0
    assert event_types(clean_db, agent.command_id) == ["command.created"]


def test_command_held_by_a_live_worker_is_reported(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine
) -> None:
    agent, agent_insert = inserted(store, clean_db, restart(world))
    with clean_db.begin() as conn:
        store.claim(conn, "another-invocation", 10, 300)
    assert invoke(agent_insert) == [agent_insert["dynamodb"]["SequenceNumber"]]
    state = get(clean_db, store, agent.command_id)
    assert state.status == "RUNNING" and state.lease_owner == "another-invocation"


def test_crashed_invocation_is_taken_over_after_its_lease(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine
) -> None:
    agent, agent_insert = inserted(store, clean_db, restart(world))
    with clean_db.begin() as conn:
        store.claim(conn, "crashed-invocation", 10, 0.05)
    time.sleep(0.1)
    assert invoke(agent_insert) == []
    state = get(clean_db, store, agent.command_id)
    assert state.status == "SUCCESS" and state.attempts == 2
    assert state.lease_owner is None
    assert event_types(clean_db, agent.command_id).count("agent.restarted") == 1


def test_out_of_attempts_after_a_crash_is_a_dead_letter(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine
) -> None:
    agent, agent_insert = inserted(store, clean_db, restart(world, max_attempts=1))
    with clean_db.begin() as conn:
        store.claim(conn, "crashed-invocation", 10, 0.05)
    time.sleep(0.1)
    assert invoke(agent_insert) == []
    state = get(clean_db, store, agent.command_id)
    assert state.status == "ERROR" and state.dead_letter and state.attempts == 1
    assert "lease expired" in (state.error_message or "")
    assert agent_status(clean_db, world) == "error"
    kinds = event_types(clean_db, agent.command_id)
    assert kinds[-2:] == ["command.lease_expired", "command.failed"]


def test_lambda_routes_and_stream_end_to_end(
    store: DynamoCommandStore, world: Tenant, clean_db: Engine, token_for: Any
) -> None:
    """POST through the create-command function, the INSERT's stream record through
    process_command, GET through the list-commands function: all on the DynamoDB table."""
    from alquimista_ops.aws import handlers
    from tests.test_aws_lambda import http_event, lambda_json

    token = token_for("INTERNAL_ADMIN", sub=uuid.UUID(ADMIN.user_id), email=ADMIN.email)
    body = {
        "command_type": "RESTART_AGENT",
        "tenant_id": str(world.id),
        "parameters": {"agent_id": str(world.agent_id)},
    }
    event = http_event("POST /internal/operations/commands", URL, token=token, body=body)
    event["headers"]["idempotency-key"] = "e2e-1"
    created = handlers.create_command(event, FakeContext())
    assert created["statusCode"] == 201, created["body"]
    command_id = uuid.UUID(lambda_json(created)["command_id"])
    assert handlers.create_command(event, FakeContext())["statusCode"] == 200  # replay
    record = get(clean_db, store, command_id)
    assert invoke(stream_record(item_of(store, record))) == []
    listed = handlers.list_commands(
        http_event("GET /internal/operations/commands", URL, {"status": "SUCCESS"}, token),
        FakeContext(),
    )
    assert listed["statusCode"] == 200, listed["body"]
    page = lambda_json(listed)
    assert page["total"] == 1 and page["commands"][0]["command_id"] == str(command_id)
    assert page["commands"][0]["output"]["status"] == "active"
    assert agent_status(clean_db, world) == "active"
    assert sql_commands(clean_db) == 0  # nothing went to the relational commands table
