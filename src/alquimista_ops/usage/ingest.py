"""Ingestion of raw agent requests: parsing, validation and the deduplicating insert.

One service for the HTTP route and the command line. A batch is validated completely before
anything is written; any invalid record rejects the whole batch (400) with each bad record's
index, field and reason. Valid batches are inserted with ``ON CONFLICT DO NOTHING`` on the
``request_id`` primary key, so a retried batch writes nothing twice; the answer tells how many
records were new (accepted) and how many were already stored (duplicates).

Rules for a record:

- ``request_id``: a string of 1 to 64 printable characters (the deduplication key);
- ``tenant_id``: an existing tenant (any status: a suspended tenant's late usage still counts);
- ``agent_id``: an agent **activated for that tenant** (a ``tenant_agents`` row of any status,
  so late records of a paused agent are accepted; an agent never activated is rejected);
- ``status``: ``success`` or ``error``;
- ``response_time_ms`` and ``tokens_used``: integers from 0 to 2,147,483,647;
- ``created_at``: an ISO 8601 timestamp (UTC when it has no offset), not later than now plus
  ``INGEST_MAX_CLOCK_SKEW_SECONDS`` and not older than ``USAGE_RAW_RETENTION_DAYS`` (a day
  whose raw rows were already removed cannot be rolled up again).

The batch is copied (binary ``COPY``) straight into ``agent_requests`` inside a savepoint; when
that meets a request id already stored (a retried batch), the savepoint is rolled back and the
batch goes through a temporary table and one ``INSERT … SELECT … ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any

import orjson
import sqlalchemy as sa
from psycopg.errors import UniqueViolation
from sqlalchemy.engine import Connection

from alquimista_ops.core.errors import PayloadTooLarge, ValidationFailed
from alquimista_ops.core.schema import agent_requests, tenant_agents, tenants

FIELDS = (
    "request_id",
    "tenant_id",
    "agent_id",
    "status",
    "response_time_ms",
    "tokens_used",
    "created_at",
)
MAX_INT = 2_147_483_647
MAX_ERRORS_LISTED = 100
STATUSES = frozenset(("success", "error"))

# A validated record, in ``agent_requests`` column order (with the stored UTC day).
Row = tuple[str, uuid.UUID, uuid.UUID, str, int, int, datetime, date]


@dataclass(frozen=True)
class RecordError:
    index: int
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True)
class IngestResult:
    received: int
    accepted: int
    duplicates: int
    tenant_ids: frozenset[uuid.UUID] = field(default_factory=frozenset)
    days: frozenset[date] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "days": sorted(d.isoformat() for d in self.days),
        }


class InvalidBatch(ValidationFailed):
    """400: the batch has invalid records; nothing was written."""

    def __init__(self, errors: Sequence[RecordError], received: int) -> None:
        shown = [e.as_dict() for e in errors[:MAX_ERRORS_LISTED]]
        super().__init__(
            f"{len(errors)} of {received} records are invalid; nothing was written",
            details={"invalid_records": len(errors), "received": received, "errors": shown},
            code="INVALID_RECORDS",
        )
        self.errors = list(errors)


# -- parsing ---------------------------------------------------------------------------------
def parse_body(body: bytes, content_type: str | None, max_records: int) -> list[Any]:
    """A JSON array, or JSON Lines (one object per line, blank lines ignored)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    stripped = body.lstrip()
    if not stripped:
        raise ValidationFailed("The batch is empty", code="EMPTY_BATCH")
    is_lines = kind in {"application/x-ndjson", "application/jsonl", "application/x-jsonlines"}
    if not is_lines and stripped[:1] == b"[":
        try:
            records = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed(
                f"The body is not valid JSON: {exc}", code="INVALID_JSON"
            ) from exc
        if not isinstance(records, list):
            raise ValidationFailed("A JSON body must be an array of records", code="INVALID_JSON")
    else:
        records = []
        for number, line in enumerate(body.splitlines(), start=1):
            if not line.strip():
                continue
            if len(records) >= max_records:
                raise PayloadTooLarge(f"A batch holds at most {max_records} records")
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise ValidationFailed(
                    f"Line {number} is not valid JSON: {exc}",
                    code="INVALID_JSON",
                    details={"line": number, "index": len(records)},
                ) from exc
    if not records:
        raise ValidationFailed("The batch is empty", code="EMPTY_BATCH")
    if len(records) > max_records:
        raise PayloadTooLarge(f"A batch holds at most {max_records} records")
    return records


# -- validation ------------------------------------------------------------------------------
@dataclass
class Validator:
    """Checks records' fields; ``now`` bounds ``created_at`` (future skew, retention)."""

    now: datetime
    max_skew_seconds: int
    retention_days: int
    _uuids: dict[str, uuid.UUID] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.latest = self.now + timedelta(seconds=self.max_skew_seconds)
        self.oldest_day = self.now.date() - timedelta(days=self.retention_days)

    def _uuid(self, value: Any) -> uuid.UUID | None:
        if not isinstance(value, str):
            return None
        found = self._uuids.get(value)
        if found is None:
            try:
                found = uuid.UUID(value)
            except ValueError:
                return None
            if len(self._uuids) < 100_000:
                self._uuids[value] = found
        return found

    @staticmethod
    def _int(value: Any) -> int | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            result = value
        elif isinstance(value, str) and value.strip().isdigit():
            result = int(value)
        else:
            return None
        return result if 0 <= result <= MAX_INT else None

    def record(self, index: int, raw: Any) -> Row | RecordError:
        if not isinstance(raw, dict):
            return RecordError(index, None, "a record must be a JSON object")
        request_id = raw.get("request_id")
        if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64:
            return RecordError(index, "request_id", "must be a string of 1 to 64 characters")
        if not request_id.isprintable():
            return RecordError(index, "request_id", "must hold printable characters only")
        tenant_id = self._uuid(raw.get("tenant_id"))
        if tenant_id is None:
            return RecordError(index, "tenant_id", "must be a UUID")
        agent_id = self._uuid(raw.get("agent_id"))
        if agent_id is None:
            return RecordError(index, "agent_id", "must be a UUID")
        status = raw.get("status")
        if status not in STATUSES:
            return RecordError(index, "status", "must be 'success' or 'error'")
        response_time = self._int(raw.get("response_time_ms"))
        if response_time is None:
            return RecordError(index, "response_time_ms", f"must be an integer from 0 to {MAX_INT}")
        tokens = self._int(raw.get("tokens_used"))
        if tokens is None:
            return RecordError(index, "tokens_used", f"must be an integer from 0 to {MAX_INT}")
        created_raw = raw.get("created_at")
        if not isinstance(created_raw, str):
            return RecordError(index, "created_at", "must be an ISO 8601 timestamp")
        try:
            created_at = datetime.fromisoformat(created_raw)
        except ValueError:
            return RecordError(index, "created_at", "must be an ISO 8601 timestamp")
        created_at = (
            created_at.replace(tzinfo=UTC)
            if created_at.tzinfo is None
            else created_at.astimezone(UTC)
        )
        if created_at > self.latest:
            return RecordError(
                index,
                "created_at",
                f"is in the future (more than {self.max_skew_seconds} s ahead of the server)",
            )
        day = created_at.date()
        if day < self.oldest_day:
            return RecordError(
                index,
                "created_at",
                f"is older than the raw usage retention ({self.retention_days} days)",
            )
        return (request_id, tenant_id, agent_id, status, response_time, tokens, created_at, day)


@dataclass
class References:
    """Which tenants exist and which agents each has activated (cached for a CLI run)."""

    tenants: set[uuid.UUID] = field(default_factory=set)
    pairs: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)

    def load(self, conn: Connection, tenant_ids: Iterable[uuid.UUID]) -> None:
        unknown = [t for t in set(tenant_ids) if t not in self.tenants]
        for start in range(0, len(unknown), 500):
            chunk = unknown[start : start + 500]
            found = set(
                conn.execute(sa.select(tenants.c.id).where(tenants.c.id.in_(chunk))).scalars()
            )
            self.tenants |= found
            self.pairs |= {
                (row.tenant_id, row.agent_id)
                for row in conn.execute(
                    sa.select(tenant_agents.c.tenant_id, tenant_agents.c.agent_id).where(
                        tenant_agents.c.tenant_id.in_(chunk)
                    )
                )
            }

    def check(
        self, conn: Connection, rows: Sequence[Row], indexes: Sequence[int]
    ) -> list[RecordError]:
        self.load(conn, {row[1] for row in rows})
        errors = []
        for index, row in zip(indexes, rows, strict=True):
            if row[1] not in self.tenants:
                errors.append(RecordError(index, "tenant_id", f"tenant {row[1]} does not exist"))
            elif (row[1], row[2]) not in self.pairs:
                errors.append(
                    RecordError(
                        index, "agent_id", f"agent {row[2]} is not activated for tenant {row[1]}"
                    )
                )
        return errors


def validate_batch(
    conn: Connection,
    records: Sequence[Any],
    validator: Validator,
    references: References | None = None,
    offset: int = 0,
) -> list[Row]:
    """Validated rows of a batch; raises ``InvalidBatch`` naming every bad record."""
    rows: list[Row] = []
    indexes: list[int] = []
    errors: list[RecordError] = []
    for i, raw in enumerate(records):
        checked = validator.record(offset + i, raw)
        if isinstance(checked, RecordError):
            errors.append(checked)
        else:
            rows.append(checked)
            indexes.append(offset + i)
    errors.extend((references or References()).check(conn, rows, indexes))
    if errors:
        errors.sort(key=lambda e: e.index)
        raise InvalidBatch(errors, len(records))
    return rows


# -- insert ----------------------------------------------------------------------------------
_TMP = "ingest_agent_requests"

RAW_COLUMNS = tuple(agent_requests.c.keys())  # a validated row's fields, in this order


_COPY_TYPES = ("varchar", "uuid", "uuid", "varchar", "int4", "int4", "timestamptz", "date")


def insert_rows(conn: Connection, rows: Sequence[Row]) -> int:
    """Insert validated rows, skipping request ids already stored; returns rows inserted."""
    if not rows:
        return 0
    driver = conn.connection.driver_connection
    assert driver is not None
    # Sorted by request id: index locality, and concurrent batches that share ids take their
    # locks in the same order (no deadlock).
    ordered = sorted(rows, key=itemgetter(0))
    with driver.cursor() as cur:
        # Fast path, the usual case of new records: COPY straight into the table inside a
        # savepoint. Any request id already stored (a retried batch) or repeated in the batch
        # makes it fail; then the batch goes through a temporary table and ON CONFLICT.
        cur.execute("SAVEPOINT ingest_direct")
        try:
            _copy_rows(cur, "agent_requests", ordered)
        except UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT ingest_direct")
        else:
            cur.execute("RELEASE SAVEPOINT ingest_direct")
            return len(ordered)
        cur.execute(f"DROP TABLE IF EXISTS {_TMP}")
        cur.execute(
            f"CREATE TEMPORARY TABLE {_TMP} (LIKE agent_requests INCLUDING DEFAULTS) ON COMMIT DROP"
        )
        _copy_rows(cur, _TMP, ordered)
        columns = ", ".join(RAW_COLUMNS)
        cur.execute(
            f"INSERT INTO agent_requests ({columns}) SELECT {columns} FROM {_TMP} "
            "ON CONFLICT (request_id) DO NOTHING"
        )
        inserted = cur.rowcount
        cur.execute(f"DROP TABLE {_TMP}")
    return int(inserted)


def _copy_rows(cur: Any, table: str, rows: Sequence[Row]) -> None:
    with cur.copy(f"COPY {table} ({', '.join(RAW_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def ingest_records(
    conn: Connection,
    records: Sequence[Any],
    validator: Validator,
    references: References | None = None,
    offset: int = 0,
) -> IngestResult:
    """Validate a whole batch, then insert it (in the caller's transaction)."""
    rows = validate_batch(conn, records, validator, references, offset)
    accepted = insert_rows(conn, rows)
    return IngestResult(
        received=len(records),
        accepted=accepted,
        duplicates=len(rows) - accepted,
        tenant_ids=frozenset(row[1] for row in rows),
        days=frozenset(row[7] for row in rows),
    )
