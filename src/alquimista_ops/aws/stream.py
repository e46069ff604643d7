"""``process_command``, the Lambda handler fed by the commands table's DynamoDB stream
(re-exported as ``alquimista_ops.aws.jobs.process_command``, the stack's handler name).

A batch holds up to 10 records; the event source mapping passes only INSERTs of PENDING items,
and the handler checks again. Each command is claimed with a conditional write (PENDING →
RUNNING, so a redelivered record does nothing twice), run by the same runner and handlers as
the self-hosted worker (``commands.worker``, ``commands.handlers``), and recorded SUCCESS or
ERROR with conditional writes. A transient failure puts the command back to PENDING
(attempts + 1) and reports its record in ``batchItemFailures``, so that Lambda delivers it
again; once ``max_attempts`` is reached the command ends in ERROR (a dead letter) and its
record is not reported.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from alquimista_ops.aws.command_store import DynamoCommandStore
from alquimista_ops.aws.lambda_runtime import get_runtime, logger, tracer
from alquimista_ops.commands.runtime_hooks import cache_hooks_for, store_for
from alquimista_ops.commands.worker import Worker, WorkerConfig

MIN_LEASE_SECONDS = 30.0


def _command_key(record: dict[str, Any]) -> dict[str, Any] | None:
    """The table key of a stream record that asks for work: an INSERT of a PENDING command."""
    if record.get("eventName") != "INSERT":
        return None
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    if (image.get("status") or {}).get("S") != "PENDING":
        return None
    command_id = (image.get("command_id") or {}).get("S")
    created_at = (image.get("created_at") or {}).get("S")
    try:
        uuid.UUID(str(command_id))
    except ValueError:
        return None  # an idempotency marker or a foreign item
    if not created_at:
        return None
    return {"command_id": {"S": command_id}, "created_at": {"S": created_at}}


def run_stream_batch(
    worker: Worker, store: DynamoCommandStore, records: Sequence[dict[str, Any]], lease: float
) -> dict[str, Any]:
    """Claim, run and record the commands of a stream batch; the partial batch response."""
    failures: list[str] = []
    wanted: list[tuple[str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    for record in records:
        key = _command_key(record)
        if key is None:
            continue
        identity = (key["command_id"]["S"], key["created_at"]["S"])
        if identity in seen:  # the same command twice in a batch (e.g. re-driven): once
            continue
        seen.add(identity)
        wanted.append((str(record["dynamodb"]["SequenceNumber"]), key))
    if not wanted:
        return {"batchItemFailures": []}
    sequence_of = {key["command_id"]["S"]: seq for seq, key in wanted}
    try:
        with worker.engine.begin() as conn:
            claimed, busy = store.claim_keys(conn, worker.owner, [k for _, k in wanted], lease)
    except Exception:
        logger.exception("could not claim the batch's commands")
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq, _ in wanted]}
    failures.extend(sequence_of[key["command_id"]["S"]] for key in busy)
    if claimed:
        worker.run_batch(claimed)
        with worker.engine.connect() as conn:
            for command in claimed:
                current = store.get(conn, command.command_id)
                # PENDING: a retry was scheduled; RUNNING: the outcome could not be recorded.
                if current is not None and current.status in ("PENDING", "RUNNING"):
                    failures.append(sequence_of[str(command.command_id)])
    report = {
        "records": len(records),
        "commands": len(wanted),
        "claimed": len(claimed),
        "busy": len(busy),
        "succeeded": worker.stats.succeeded,
        "retried": worker.stats.retried,
        "failed": worker.stats.failed,
        "reported": len(failures),
    }
    logger.info("command stream batch processed", extra=report)
    tracer.put_metadata(key="batch", value=report)
    # Lambda retries from the lowest reported sequence number: order them as they came.
    order = {seq: i for i, (seq, _) in enumerate(wanted)}
    unique = sorted(set(failures), key=order.__getitem__)
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in unique]}


def _lease_seconds(context: Any, default: float) -> float:
    """The invocation's remaining time (plus a margin): a command is leased for as long as
    this invocation may still be running it."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return max(MIN_LEASE_SECONDS, float(remaining()) / 1000.0 + 5.0)
    return max(MIN_LEASE_SECONDS, default)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def process_command(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runtime = get_runtime()
    store = store_for(runtime)
    if not isinstance(store, DynamoCommandStore):
        raise RuntimeError("process_command needs the DynamoDB command store (COMMANDS_TABLE)")
    request_id = str(getattr(context, "aws_request_id", "") or uuid.uuid4())
    worker = Worker(
        runtime.engine,
        config=WorkerConfig.from_settings(runtime.settings, listen=False),
        store=store,
        cache=cache_hooks_for(runtime),
        owner=f"lambda:{request_id}",
    )
    lease = _lease_seconds(context, runtime.settings.command_lease_seconds)
    return run_stream_batch(worker, store, list(event.get("Records") or []), lease)
