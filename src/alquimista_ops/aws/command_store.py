"""The ``CommandStore`` on DynamoDB (``COMMANDS_TABLE``): the AWS twin of ``SqlCommandStore``.

Table shape (``layout.commands_table_definition``, the same as the CDK stack's): keys
``command_id`` (hash) + ``created_at`` (range, fixed-width ISO-8601 UTC string), GSIs
``tenant_id-created_at-index`` and ``status-created_at-index`` (projection ALL), stream
NEW_AND_OLD_IMAGES, TTL attribute ``expires_at`` (epoch seconds). An attribute that has no value
is left out of the item (never a null or empty GSI key: a command without a tenant simply does
not appear in the tenant index). ``parameters`` and ``output`` are JSON strings (exact numbers,
no Decimal conversions).

Every status change is a conditional write on the expected state: PENDING → RUNNING only if the
item is PENDING (or RUNNING with an expired lease, for the stream handler), cancel only if
PENDING, SUCCESS/ERROR/retry only by the lease holder. Completion of a batch is one
``TransactWriteItems`` (all or nothing), issued inside the caller's relational transaction
before it commits, so a lost lease rolls the effects back.

Idempotency: a second item ``command_id = "idempotency#<sha256(created_by, key)>"`` (no status,
no tenant: in neither index; the stream filter ignores it) is written in the same transaction as
the command, on the condition that it does not exist; a replay reads it back.

The audit rows stay in the relational ``operational_events`` table (the ``conn`` passed in).
Differences from the SQL store: no cross-store atomicity (a command put in DynamoDB whose
request transaction then fails to commit has no ``created`` row), ``purge_expired`` is DynamoDB
TTL's job, and a list page reads at most ``offset + limit`` items per index partition (offsets
are capped at ``MAX_OFFSET``); the total is a ``COUNT`` query.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from alquimista_ops.aws import layout
from alquimista_ops.commands import audit
from alquimista_ops.commands.audit import Actor
from alquimista_ops.commands.model import Backlog, CommandQuery, CommandRecord, NewCommand
from alquimista_ops.commands.queries import TENANT_NAMES
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.errors import Conflict, ValidationFailed
from alquimista_ops.core.reads import Reads
from alquimista_ops.core.settings import Settings

STATUSES = ("PENDING", "RUNNING", "SUCCESS", "ERROR", "CANCELLED")
IDEMPOTENCY_PREFIX = "idempotency#"
IDEMPOTENCY_SORT = "-"
MAX_OFFSET = 10_000
TRANSACTION_ITEMS = 100  # the TransactWriteItems limit
_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_KEYS = (layout.COMMANDS_PARTITION_KEY, layout.COMMANDS_SORT_KEY)


class LeaseLost(RuntimeError):
    """A conditional write found the command no longer leased to this worker."""


def ts(value: datetime) -> str:
    """Fixed-width UTC ISO string: lexicographic order is time order."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(_TS_FORMAT)


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, _TS_FORMAT).replace(tzinfo=UTC)


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def idempotency_id(created_by: str, key: str) -> str:
    digest = hashlib.sha256(f"{created_by}\x00{key}".encode()).hexdigest()
    return f"{IDEMPOTENCY_PREFIX}{digest}"


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", ""))


def record_from_item(item: dict[str, Any], tenant_name: str | None = None) -> CommandRecord:
    """A DynamoDB item (attribute-value form, as ``GetItem`` and stream images give it)."""

    def s(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else str(value["S"])

    def when(name: str) -> datetime | None:
        raw = s(name)
        return parse_ts(raw) if raw else None

    def n(name: str, default: int = 0) -> int:
        value = item.get(name)
        return int(value["N"]) if value is not None else default

    tenant = s("tenant_id")
    output = s("output")
    created_at = parse_ts(str(s("created_at")))
    return CommandRecord(
        command_id=uuid.UUID(str(s("command_id"))),
        command_type=str(s("command_type")),
        status=str(s("status")),
        tenant_id=uuid.UUID(tenant) if tenant else None,
        parameters=json.loads(s("parameters") or "{}"),
        created_by=str(s("created_by")),
        created_by_email=s("created_by_email"),
        created_at=created_at,
        started_at=when("started_at"),
        completed_at=when("completed_at"),
        output=json.loads(output) if output is not None else None,
        error_message=s("error_message"),
        attempts=n("attempts"),
        max_attempts=n("max_attempts", 1),
        next_attempt_at=when("next_attempt_at") or created_at,
        lease_owner=s("lease_owner"),
        lease_expires_at=when("lease_expires_at"),
        idempotency_key=s("idempotency_key"),
        request_hash=s("request_hash"),
        expires_at=datetime.fromtimestamp(n("expires_at"), UTC),
        tenant_name=tenant_name,
    )


def item_from_new(new: NewCommand) -> dict[str, Any]:
    item: dict[str, Any] = {
        "command_id": _s(str(new.command_id)),
        "created_at": _s(ts(new.created_at)),
        "command_type": _s(new.command_type),
        "status": _s("PENDING"),
        "parameters": _s(_json(new.parameters)),
        "created_by": _s(new.created_by),
        "attempts": _n(0),
        "max_attempts": _n(new.max_attempts),
        "next_attempt_at": _s(ts(new.created_at)),
        "expires_at": _n(int(new.expires_at.timestamp())),
    }
    optional = {
        "tenant_id": str(new.tenant_id) if new.tenant_id else None,
        "created_by_email": new.created_by_email,
        "idempotency_key": new.idempotency_key,
        "request_hash": new.request_hash,
    }
    item.update({k: _s(v) for k, v in optional.items() if v})  # no null/empty attributes
    return item


def _key(record: CommandRecord) -> dict[str, Any]:
    return {"command_id": _s(str(record.command_id)), "created_at": _s(ts(record.created_at))}


class DynamoCommandStore:
    """The ``CommandStore`` over the DynamoDB commands table (``client``: a boto3 client)."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table = table_name
        self.client = client

    # -- low level -------------------------------------------------------------------------
    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        kwargs = {"TableName": self.table, **kwargs}
        while True:
            page = self.client.query(**kwargs)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _count(self, **kwargs: Any) -> int:
        kwargs = {"TableName": self.table, "Select": "COUNT", **kwargs}
        total = 0
        while True:
            page = self.client.query(**kwargs)
            total += int(page.get("Count", 0))
            last = page.get("LastEvaluatedKey")
            if not last:
                return total
            kwargs["ExclusiveStartKey"] = last

    def _partition(
        self,
        index: str,
        attribute: str,
        value: str,
        filters: dict[str, str],
        *,
        newest_first: bool = True,
        extra_filter: str | None = None,
        extra_values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Query arguments for one index partition, with equality filters."""
        names = {"#p": attribute}
        values: dict[str, Any] = {":p": _s(value), **(extra_values or {})}
        conditions = []
        for i, (name, wanted) in enumerate(sorted(filters.items())):
            names[f"#f{i}"] = name
            values[f":f{i}"] = _s(wanted)
            conditions.append(f"#f{i} = :f{i}")
        if extra_filter:
            conditions.append(extra_filter)
        kwargs: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        if conditions:
            kwargs["FilterExpression"] = " AND ".join(conditions)
        return kwargs

    def _item(self, command_id: uuid.UUID, consistent: bool = True) -> dict[str, Any] | None:
        page = self.client.query(
            TableName=self.table,
            KeyConditionExpression="command_id = :id",
            ExpressionAttributeValues={":id": _s(str(command_id))},
            ConsistentRead=consistent,
            ScanIndexForward=False,
            Limit=1,
        )
        items = page.get("Items", [])
        return items[0] if items else None

    def _update(self, key: dict[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        """A conditional UpdateItem; ``None`` when its condition does not hold."""
        try:
            response = self.client.update_item(
                TableName=self.table, Key=key, ReturnValues="ALL_NEW", **kwargs
            )
        except Exception as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise
        attributes: dict[str, Any] = response["Attributes"]
        return attributes

    def _with_names(self, conn: Connection, items: Sequence[dict[str, Any]]) -> list[CommandRecord]:
        ids = _tenant_ids(items)
        rows = TENANT_NAMES.execute(conn, ids=list(ids)).all() if ids else []
        return _named(items, rows)

    async def _read_with_names(
        self, reads: Reads, items: Sequence[dict[str, Any]]
    ) -> list[CommandRecord]:
        ids = _tenant_ids(items)
        return _named(items, await reads.all(TENANT_NAMES, ids=list(ids)) if ids else [])

    # -- API side --------------------------------------------------------------------------
    def create(self, conn: Connection, new: NewCommand, actor: Actor) -> tuple[CommandRecord, bool]:
        item = item_from_new(new)
        put = {
            "TableName": self.table,
            "Item": item,
            "ConditionExpression": "attribute_not_exists(command_id)",
        }
        if new.idempotency_key is None:
            self.client.put_item(**put)
        else:
            marker_key = {
                "command_id": _s(idempotency_id(new.created_by, new.idempotency_key)),
                "created_at": _s(IDEMPOTENCY_SORT),
            }
            marker = {
                **marker_key,
                "target_command_id": item["command_id"],
                "target_created_at": item["created_at"],
                "request_hash": _s(new.request_hash or ""),
                "expires_at": item["expires_at"],
            }
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table,
                                "Item": marker,
                                "ConditionExpression": "attribute_not_exists(command_id)",
                            }
                        },
                        {"Put": put},
                    ]
                )
            except Exception as exc:
                if _error_code(exc) != "TransactionCanceledException":
                    raise
                existing = self.client.get_item(
                    TableName=self.table, Key=marker_key, ConsistentRead=True
                ).get("Item")
                if existing is None:
                    raise
                target = uuid.UUID(existing["target_command_id"]["S"])
                if existing["request_hash"]["S"] != (new.request_hash or ""):
                    raise Conflict(
                        "This Idempotency-Key was already used with a different request",
                        code="IDEMPOTENCY_CONFLICT",
                        details={"field": "Idempotency-Key", "command_id": str(target)},
                    ) from None
                replay = self.get(conn, target)
                if replay is None:  # expired by TTL between the two reads
                    raise
                return replay, False
        record = self._with_names(conn, [item])[0]
        audit.created(conn, record, actor, new)
        return record, True

    def get(self, conn: Connection, command_id: uuid.UUID) -> CommandRecord | None:
        item = self._item(command_id)
        return self._with_names(conn, [item])[0] if item else None

    async def read_one(self, reads: Reads, command_id: uuid.UUID) -> CommandRecord | None:
        item = await run_in_threadpool(self._item, command_id)  # boto3 blocks
        return (await self._read_with_names(reads, [item]))[0] if item else None

    def search(self, conn: Connection, query: CommandQuery) -> tuple[list[CommandRecord], int]:
        items, total = self._search_items(query)
        return self._with_names(conn, items), total

    async def read_page(self, reads: Reads, query: CommandQuery) -> tuple[list[CommandRecord], int]:
        items, total = await run_in_threadpool(self._search_items, query)  # boto3 blocks
        return await self._read_with_names(reads, items), total

    def _search_items(self, query: CommandQuery) -> tuple[list[dict[str, Any]], int]:
        """The items of ``query``'s page and the true total."""
        if query.offset > MAX_OFFSET:
            raise ValidationFailed(
                f"offset is at most {MAX_OFFSET} when commands are kept in DynamoDB",
                details={"field": "offset"},
            )
        filters: dict[str, str] = {}
        if query.command_type:
            filters["command_type"] = query.command_type
        partitions: list[dict[str, Any]]
        if query.status:
            if query.tenant_id:
                filters["tenant_id"] = str(query.tenant_id)
            partitions = [self._partition(layout.STATUS_INDEX, "status", query.status, filters)]
        elif query.tenant_id:
            partitions = [
                self._partition(layout.TENANT_INDEX, "tenant_id", str(query.tenant_id), filters)
            ]
        else:  # every command has a status: the five status partitions cover the table
            partitions = [
                self._partition(layout.STATUS_INDEX, "status", status, filters)
                for status in STATUSES
            ]
        need = query.offset + query.limit
        total = 0
        items: list[dict[str, Any]] = []
        for kwargs in partitions:
            total += self._count(**kwargs)
            for n, item in enumerate(self._query(**kwargs)):
                if n >= need:
                    break
                items.append(item)
        items.sort(key=lambda i: (i["created_at"]["S"], i["command_id"]["S"]), reverse=True)
        return items[query.offset : need], total

    def cancel(self, conn: Connection, command_id: uuid.UUID, actor: Actor) -> CommandRecord | None:
        item = self._item(command_id)
        if item is None:
            return None
        updated = self._update(
            {k: item[k] for k in _KEYS},
            UpdateExpression="SET #s = :cancelled, completed_at = :now "
            "REMOVE lease_owner, lease_expires_at",
            ConditionExpression="#s = :pending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":cancelled": _s("CANCELLED"),
                ":pending": _s("PENDING"),
                ":now": _s(ts(utcnow())),
            },
        )
        if updated is None:
            return None
        record = self._with_names(conn, [updated])[0]
        audit.cancelled(conn, record, actor)
        return record

    # -- worker side -----------------------------------------------------------------------
    def _claim_item(
        self,
        key: dict[str, Any],
        owner: str,
        lease_seconds: float,
        *,
        take_expired: bool,
    ) -> dict[str, Any] | None:
        now = utcnow()
        values: dict[str, Any] = {
            ":running": _s("RUNNING"),
            ":pending": _s("PENDING"),
            ":owner": _s(owner),
            ":now": _s(ts(now)),
            ":until": _s(ts(now + timedelta(seconds=lease_seconds))),
            ":one": _n(1),
        }
        if take_expired:
            # The stream handler: PENDING whenever it is due or not (the stream's retry is the
            # backoff), or RUNNING whose worker died (its lease expired) with attempts left.
            condition = (
                "attribute_exists(command_id) AND (#s = :pending OR (#s = :running AND "
                "lease_expires_at < :now AND attempts < max_attempts))"
            )
        else:
            condition = "#s = :pending AND next_attempt_at <= :now"
        return self._update(
            key,
            UpdateExpression="SET #s = :running, attempts = attempts + :one, lease_owner = :owner, "
            "lease_expires_at = :until, started_at = :now",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def _started(
        self, conn: Connection, owner: str, items: Sequence[dict[str, Any]]
    ) -> list[CommandRecord]:
        records = [record_from_item(item) for item in items]
        audit.started(conn, owner, records)
        return records

    def claim(
        self, conn: Connection, owner: str, limit: int, lease_seconds: float
    ) -> list[CommandRecord]:
        """Oldest due PENDING commands (status index), each taken by a conditional write, so
        two workers never hold the same command."""
        now = _s(ts(utcnow()))
        kwargs = self._partition(
            layout.STATUS_INDEX,
            "status",
            "PENDING",
            {},
            newest_first=False,
            extra_filter="next_attempt_at <= :now",
            extra_values={":now": now},
        )
        taken: list[dict[str, Any]] = []
        for item in self._query(**kwargs):
            if len(taken) >= limit:
                break
            claimed = self._claim_item(
                {k: item[k] for k in _KEYS}, owner, lease_seconds, take_expired=False
            )
            if claimed is not None:
                taken.append(claimed)
        return self._started(conn, owner, taken)

    def claim_keys(
        self,
        conn: Connection,
        owner: str,
        keys: Sequence[dict[str, Any]],
        lease_seconds: float,
    ) -> tuple[list[CommandRecord], list[dict[str, Any]]]:
        """The stream handler's claim of the commands named by stream records.

        Returns ``(claimed, busy)``: ``busy`` are the keys of commands another live worker
        holds (to be retried later). A command already finished, cancelled or gone is neither
        (a redelivered record does nothing). A RUNNING command whose lease expired with no
        attempts left becomes a dead letter here."""
        taken: list[dict[str, Any]] = []
        busy: list[dict[str, Any]] = []
        for key in keys:
            claimed = self._claim_item(key, owner, lease_seconds, take_expired=True)
            if claimed is not None:
                taken.append(claimed)
                continue
            current = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get(
                "Item"
            )
            if current is None or current["status"]["S"] != "RUNNING":
                continue
            record = record_from_item(current)
            expired = record.lease_expires_at is not None and record.lease_expires_at < utcnow()
            if expired and record.attempts >= record.max_attempts:
                self._release([record], conn)  # its worker died on the last attempt
            else:
                busy.append(key)  # held by a live worker (or just expired): deliver again
        return self._started(conn, owner, taken), busy

    def hold(self, conn: Connection, owner: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        held = set()
        for command_id in ids:
            item = self._item(command_id)
            if (
                item is not None
                and item["status"]["S"] == "RUNNING"
                and item.get("lease_owner", {}).get("S") == owner
            ):
                held.add(command_id)
        return held

    def complete(
        self, conn: Connection, owner: str, results: Sequence[tuple[CommandRecord, dict[str, Any]]]
    ) -> None:
        """RUNNING → SUCCESS for the whole batch in one ``TransactWriteItems`` per 100 commands,
        each on the condition that ``owner`` still holds it; otherwise ``LeaseLost`` is raised
        and the caller's transaction (the effects) rolls back."""
        if not results:
            return
        now = _s(ts(utcnow()))
        for start in range(0, len(results), TRANSACTION_ITEMS):
            chunk = results[start : start + TRANSACTION_ITEMS]
            try:
                self.client.transact_write_items(
                    TransactItems=[
                        {
                            "Update": {
                                "TableName": self.table,
                                "Key": _key(record),
                                "UpdateExpression": "SET #s = :success, #o = :output, "
                                "completed_at = :now REMOVE error_message, lease_owner, "
                                "lease_expires_at",
                                "ConditionExpression": "#s = :running AND lease_owner = :owner",
                                "ExpressionAttributeNames": {"#s": "status", "#o": "output"},
                                "ExpressionAttributeValues": {
                                    ":success": _s("SUCCESS"),
                                    ":running": _s("RUNNING"),
                                    ":owner": _s(owner),
                                    ":output": _s(_json(output)),
                                    ":now": now,
                                },
                            }
                        }
                        for record, output in chunk
                    ]
                )
            except Exception as exc:
                if _error_code(exc) == "TransactionCanceledException":
                    raise LeaseLost(f"{owner} no longer holds every command of the batch") from exc
                raise
        audit.succeeded(conn, owner, results)

    def fail(
        self,
        conn: Connection,
        owner: str,
        record: CommandRecord,
        error: str,
        retry_at: datetime | None,
    ) -> str | None:
        values: dict[str, Any] = {
            ":running": _s("RUNNING"),
            ":owner": _s(owner),
            ":error": _s(error[:2000] or "error"),
        }
        if retry_at is not None:
            status = "PENDING"
            update = "SET #s = :status, next_attempt_at = :at, error_message = :error"
            values.update({":status": _s(status), ":at": _s(ts(retry_at))})
        else:
            status = "ERROR"
            update = "SET #s = :status, completed_at = :at, error_message = :error"
            values.update({":status": _s(status), ":at": _s(ts(utcnow()))})
        updated = self._update(
            _key(record),
            UpdateExpression=f"{update} REMOVE lease_owner, lease_expires_at",
            ConditionExpression="#s = :running AND lease_owner = :owner",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
        if updated is None:
            return None
        audit.failed(conn, owner, record, error, retry_at)
        return status

    def _running(self, extra_filter: str, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
        return self._query(
            **self._partition(
                layout.STATUS_INDEX,
                "status",
                "RUNNING",
                {},
                newest_first=False,
                extra_filter=extra_filter,
                extra_values=values,
            )
        )

    def renew_leases(self, conn: Connection, owner: str, lease_seconds: float) -> int:
        until = _s(ts(utcnow() + timedelta(seconds=lease_seconds)))
        renewed = 0
        for item in self._running("lease_owner = :owner", {":owner": _s(owner)}):
            if self._update(
                {k: item[k] for k in _KEYS},
                UpdateExpression="SET lease_expires_at = :until",
                ConditionExpression="#s = :running AND lease_owner = :owner",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":until": until,
                    ":running": _s("RUNNING"),
                    ":owner": _s(owner),
                },
            ):
                renewed += 1
        return renewed

    def _release(self, records: Sequence[CommandRecord], conn: Connection) -> int:
        now = utcnow()
        released: list[CommandRecord] = []
        for r in records:
            values: dict[str, Any] = {
                ":running": _s("RUNNING"),
                ":lease": _s(ts(r.lease_expires_at or now)),
                ":now": _s(ts(now)),
            }
            if r.attempts >= r.max_attempts:
                update = "SET #s = :error, completed_at = :now, error_message = :message"
                values.update(
                    {
                        ":error": _s("ERROR"),
                        ":message": _s(
                            "The worker running this command stopped (lease expired) "
                            "and no attempts are left"
                        ),
                    }
                )
            else:
                update = "SET #s = :pending, next_attempt_at = :now"
                values[":pending"] = _s("PENDING")
            changed = self._update(
                _key(r),
                UpdateExpression=f"{update} REMOVE lease_owner, lease_expires_at",
                ConditionExpression="#s = :running AND lease_expires_at = :lease",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
            )
            if changed is not None:
                released.append(r)
        audit.leases_expired(
            conn, released, {r.command_id for r in released if r.attempts >= r.max_attempts}
        )
        return len(released)

    def release_expired(self, conn: Connection, limit: int = 500) -> int:
        expired: list[CommandRecord] = []
        for item in self._running("lease_expires_at < :now", {":now": _s(ts(utcnow()))}):
            if len(expired) >= limit:
                break
            expired.append(record_from_item(item))
        return self._release(expired, conn)

    def backlog(self, conn: Connection) -> Backlog:
        now = utcnow()
        pending = self._count(**self._partition(layout.STATUS_INDEX, "status", "PENDING", {}))
        running = self._count(**self._partition(layout.STATUS_INDEX, "status", "RUNNING", {}))
        oldest: datetime | None = None
        due = self._partition(
            layout.STATUS_INDEX,
            "status",
            "PENDING",
            {},
            extra_filter="next_attempt_at <= :now",
            extra_values={":now": _s(ts(now))},
        )
        for item in self._query(**due, ProjectionExpression="next_attempt_at"):
            at = parse_ts(item["next_attempt_at"]["S"])
            oldest = at if oldest is None or at < oldest else oldest
        dead = self._count(
            **self._partition(
                layout.STATUS_INDEX, "status", "ERROR", {}, extra_filter="attempts >= max_attempts"
            )
        )
        age = round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None
        return Backlog(pending, running, age, dead)

    def redrive(
        self, conn: Connection, limit: int, tenant_id: uuid.UUID | None, actor: Actor
    ) -> list[uuid.UUID]:
        """Dead letters back to PENDING. The item is deleted (on the condition that it is
        still ERROR) and put again PENDING with fresh attempts, so the stream sees an INSERT
        and the process-command function runs it (the stream filter takes INSERTs only)."""
        filters = {"tenant_id": str(tenant_id)} if tenant_id else {}
        kwargs = self._partition(
            layout.STATUS_INDEX,
            "status",
            "ERROR",
            filters,
            newest_first=False,
            extra_filter="attempts >= max_attempts",
        )
        records: list[CommandRecord] = []
        now = _s(ts(utcnow()))
        for item in self._query(**kwargs):
            if len(records) >= limit:
                break
            key = {k: item[k] for k in _KEYS}
            try:
                old = self.client.delete_item(
                    TableName=self.table,
                    Key=key,
                    ConditionExpression="#s = :error",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":error": _s("ERROR")},
                    ReturnValues="ALL_OLD",
                )["Attributes"]
            except Exception as exc:
                if _error_code(exc) == "ConditionalCheckFailedException":
                    continue
                raise
            fresh = {
                k: v
                for k, v in old.items()
                if k not in {"started_at", "completed_at", "output", "error_message"}
            }
            fresh.update({"status": _s("PENDING"), "attempts": _n(0), "next_attempt_at": now})
            self.client.put_item(TableName=self.table, Item=fresh)
            records.append(record_from_item(old))
        audit.redriven(conn, records, actor)
        return [r.command_id for r in records]

    def purge_expired(self, conn: Connection, limit: int = 5000) -> int:
        """Nothing to do: DynamoDB TTL deletes the items past ``expires_at``."""
        return 0


def dynamodb_client(region: str) -> Any:
    import boto3

    return boto3.client("dynamodb", region_name=region)


def dynamodb_store(settings: Settings) -> DynamoCommandStore:
    """The store of ``COMMANDS_TABLE`` (``commands.runtime_hooks.build_store``)."""
    assert settings.commands_table
    return DynamoCommandStore(settings.commands_table, dynamodb_client(settings.aws_region))


def _tenant_ids(items: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    return {r.tenant_id for r in map(record_from_item, items) if r.tenant_id}


def _named(items: Sequence[dict[str, Any]], names: Sequence[Any]) -> list[CommandRecord]:
    """The records of ``items`` with their tenants' names (rows of ``TENANT_NAMES``)."""
    by_id = {row.id: row.name for row in names}
    records = []
    for item in items:
        record = record_from_item(item)
        records.append(
            record_from_item(item, by_id.get(record.tenant_id)) if record.tenant_id else record
        )
    return records
