"""Where commands live: the ``CommandStore`` protocol and its SQL implementation.

The protocol is deliberately narrow so that a DynamoDB implementation (AWS) can stand beside
the SQL one; the handlers never see a store. Every method takes the relational connection of
the caller's transaction: the SQL store keeps commands in it, and every store writes the
audit rows (``operational_events``) in it.

SQL implementation: claiming is ``UPDATE … WHERE command_id IN (SELECT … FOR UPDATE SKIP LOCKED
LIMIT n) RETURNING``, so concurrent workers never take the same row, and ``pg_notify`` wakes
the workers when the creating transaction commits. The API's reads (``read_one``,
``read_page``) run on the event loop (``core.reads``), from the same declarations as the
transactional ``get`` and ``search``.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from alquimista_ops.commands import audit
from alquimista_ops.commands.audit import Actor
from alquimista_ops.commands.model import Backlog, CommandQuery, CommandRecord, NewCommand
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.errors import Conflict
from alquimista_ops.core.reads import Query, Reads
from alquimista_ops.core.schema import operational_commands as oc
from alquimista_ops.core.schema import tenants
from alquimista_ops.core.types import UTCDateTime

NOTIFY_CHANNEL = "alquimista_commands"

RECORD_COLUMNS = [
    oc.c.command_id,
    oc.c.command_type,
    oc.c.status,
    oc.c.tenant_id,
    oc.c.parameters,
    oc.c.created_by,
    oc.c.created_by_email,
    oc.c.created_at,
    oc.c.started_at,
    oc.c.completed_at,
    oc.c.output,
    oc.c.error_message,
    oc.c.attempts,
    oc.c.max_attempts,
    oc.c.next_attempt_at,
    oc.c.lease_owner,
    oc.c.lease_expires_at,
    oc.c.idempotency_key,
    oc.c.request_hash,
    oc.c.expires_at,
]


_COMPLETE_MANY = sa.text(
    """
    UPDATE operational_commands AS c
    SET status = 'SUCCESS', output = d.output, completed_at = :now, error_message = NULL,
        lease_owner = NULL, lease_expires_at = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:outputs AS jsonb[])) AS d(command_id, output)
    WHERE c.command_id = d.command_id AND c.lease_owner = :owner
    """
).bindparams(sa.bindparam("now", type_=UTCDateTime()))


_GET = Query(
    sa.select(*RECORD_COLUMNS, tenants.c.name.label("tenant_name"))
    .select_from(oc.outerjoin(tenants, tenants.c.id == oc.c.tenant_id))
    .where(oc.c.command_id == sa.bindparam("command_id"))
)


def _search_conditions(
    table: sa.FromClause, by_status: bool, by_type: bool, by_tenant: bool
) -> list[Any]:
    conditions = []
    if by_status:
        conditions.append(table.c.status == sa.bindparam("status"))
    if by_type:
        conditions.append(table.c.command_type == sa.bindparam("command_type"))
    if by_tenant:
        conditions.append(table.c.tenant_id == sa.bindparam("tenant_id"))
    return conditions


@functools.cache
def _search_statement(by_status: bool, by_type: bool, by_tenant: bool) -> Query:
    """The number of matching commands (``matching``) with a page of them (``:limit``,
    ``:offset``), newest first: one row per command of the page, or a single row without a
    command (null ``command_id``) when the page is empty."""
    counted = oc.alias("counted")
    matching = (
        sa.select(sa.func.count().label("matching"))
        .select_from(counted)
        .where(*_search_conditions(counted, by_status, by_type, by_tenant))
        .subquery("matching")
    )
    page = (
        sa.select(*RECORD_COLUMNS, tenants.c.name.label("tenant_name"))
        .select_from(oc.outerjoin(tenants, tenants.c.id == oc.c.tenant_id))
        .where(*_search_conditions(oc, by_status, by_type, by_tenant))
        .order_by(oc.c.created_at.desc(), oc.c.command_id.desc())
        .limit(sa.bindparam("limit"))
        .offset(sa.bindparam("offset"))
        .subquery("page")
    )
    return Query(
        sa.select(matching.c.matching, page)
        .select_from(matching.outerjoin(page, sa.true()))
        .order_by(page.c.created_at.desc(), page.c.command_id.desc())
    )


def _search(query: CommandQuery) -> tuple[Query, dict[str, Any]]:
    """The search statement of ``query``'s filters and its parameters."""
    shape = (bool(query.status), bool(query.command_type), bool(query.tenant_id))
    params = {
        "status": query.status,
        "command_type": query.command_type,
        "tenant_id": query.tenant_id,
        "limit": query.limit,
        "offset": query.offset,
    }
    return _search_statement(*shape), params


def _page(rows: Sequence[Any]) -> tuple[list[CommandRecord], int]:
    return [_record(r) for r in rows if r.command_id is not None], int(rows[0].matching)


class CommandStore(Protocol):
    """What the service and the worker need from the place commands are kept."""

    async def read_one(self, reads: Reads, command_id: uuid.UUID) -> CommandRecord | None:
        """``get`` on the API's read path (``core.reads``)."""
        ...

    async def read_page(self, reads: Reads, query: CommandQuery) -> tuple[list[CommandRecord], int]:
        """``search`` on the API's read path (``core.reads``)."""
        ...

    def create(self, conn: Connection, new: NewCommand, actor: Actor) -> tuple[CommandRecord, bool]:
        """Insert a PENDING command, or return the one already created with the same
        (created_by, idempotency_key): ``(record, created)``. A reused key with another
        request hash raises ``Conflict``."""
        ...

    def get(self, conn: Connection, command_id: uuid.UUID) -> CommandRecord | None: ...

    def search(self, conn: Connection, query: CommandQuery) -> tuple[list[CommandRecord], int]:
        """A page of commands, newest first, and the true total."""
        ...

    def cancel(self, conn: Connection, command_id: uuid.UUID, actor: Actor) -> CommandRecord | None:
        """PENDING → CANCELLED; ``None`` when the command is no longer PENDING."""
        ...

    def claim(
        self, conn: Connection, owner: str, limit: int, lease_seconds: float
    ) -> list[CommandRecord]:
        """Take up to ``limit`` due PENDING commands: RUNNING, attempts + 1, leased to owner."""
        ...

    def hold(self, conn: Connection, owner: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        """Confirm (and lock for the rest of ``conn``'s transaction) the commands still leased
        to ``owner``; returns their ids."""
        ...

    def complete(
        self, conn: Connection, owner: str, results: Sequence[tuple[CommandRecord, dict[str, Any]]]
    ) -> None:
        """RUNNING → SUCCESS with the output, in the same transaction as the effects."""
        ...

    def fail(
        self,
        conn: Connection,
        owner: str,
        record: CommandRecord,
        error: str,
        retry_at: datetime | None,
    ) -> str | None:
        """RUNNING → PENDING at ``retry_at`` (a retry) or → ERROR (``retry_at`` None).
        Returns the new status, or ``None`` when the lease was lost."""
        ...

    def renew_leases(self, conn: Connection, owner: str, lease_seconds: float) -> int: ...

    def release_expired(self, conn: Connection, limit: int = 500) -> int:
        """Commands whose worker died: back to PENDING, or ERROR when out of attempts."""
        ...

    def backlog(self, conn: Connection) -> Backlog: ...

    def redrive(
        self, conn: Connection, limit: int, tenant_id: uuid.UUID | None, actor: Actor
    ) -> list[uuid.UUID]:
        """Dead letters (ERROR after max_attempts) back to PENDING with fresh attempts."""
        ...

    def purge_expired(self, conn: Connection, limit: int = 5000) -> int:
        """Delete commands past their ``expires_at`` (90 days); never a RUNNING one."""
        ...


def _record(row: Any, tenant_name: str | None = None) -> CommandRecord:
    values = row._asdict()
    values.pop("matching", None)
    values.setdefault("tenant_name", tenant_name)
    return CommandRecord(**values)


class SqlCommandStore:
    """The ``CommandStore`` over PostgreSQL (SKIP LOCKED, NOTIFY)."""

    def notify(self, conn: Connection, payload: str = "") -> None:
        # NOTIFY inside a transaction is delivered when (and only if) it commits.
        conn.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, payload)))

    # -- API side --------------------------------------------------------------------------
    def create(self, conn: Connection, new: NewCommand, actor: Actor) -> tuple[CommandRecord, bool]:
        values = {
            "command_id": new.command_id,
            "command_type": new.command_type,
            "status": "PENDING",
            "tenant_id": new.tenant_id,
            "parameters": new.parameters,
            "created_by": new.created_by,
            "created_by_email": new.created_by_email,
            "created_at": new.created_at,
            "attempts": 0,
            "max_attempts": new.max_attempts,
            "next_attempt_at": new.created_at,
            "idempotency_key": new.idempotency_key,
            "request_hash": new.request_hash,
            "expires_at": new.expires_at,
        }
        if new.idempotency_key is None:
            conn.execute(sa.insert(oc).values(values))
        else:
            insert = postgresql.insert(oc).values(values)
            inserted = conn.execute(
                insert.on_conflict_do_nothing(
                    index_elements=["created_by", "idempotency_key"]
                ).returning(oc.c.command_id)
            ).first()
            if inserted is None:
                existing = conn.execute(
                    sa.select(*RECORD_COLUMNS).where(
                        oc.c.created_by == new.created_by,
                        oc.c.idempotency_key == new.idempotency_key,
                    )
                ).one()
                record = _record(existing)
                if record.request_hash != new.request_hash:
                    raise Conflict(
                        "This Idempotency-Key was already used with a different request",
                        code="IDEMPOTENCY_CONFLICT",
                        details={"field": "Idempotency-Key", "command_id": str(record.command_id)},
                    )
                return record, False
        record = self._must_get(conn, new.command_id)
        audit.created(conn, record, actor, new)
        self.notify(conn, str(new.command_id))
        return record, True

    def _must_get(self, conn: Connection, command_id: uuid.UUID) -> CommandRecord:
        record = self.get(conn, command_id)
        assert record is not None
        return record

    def get(self, conn: Connection, command_id: uuid.UUID) -> CommandRecord | None:
        row = _GET.execute(conn, command_id=command_id).first()
        return _record(row) if row else None

    async def read_one(self, reads: Reads, command_id: uuid.UUID) -> CommandRecord | None:
        row = await reads.first(_GET, command_id=command_id)
        return _record(row) if row else None

    def search(self, conn: Connection, query: CommandQuery) -> tuple[list[CommandRecord], int]:
        statement, params = _search(query)
        return _page(statement.execute(conn, **params).all())

    async def read_page(self, reads: Reads, query: CommandQuery) -> tuple[list[CommandRecord], int]:
        statement, params = _search(query)
        return _page(await reads.all(statement, **params))

    def cancel(self, conn: Connection, command_id: uuid.UUID, actor: Actor) -> CommandRecord | None:
        now = utcnow()
        changed = conn.execute(
            sa.update(oc)
            .where(oc.c.command_id == command_id, oc.c.status == "PENDING")
            .values(status="CANCELLED", completed_at=now, lease_owner=None, lease_expires_at=None)
        ).rowcount
        if not changed:
            return None
        record = self._must_get(conn, command_id)
        audit.cancelled(conn, record, actor)
        return record

    # -- worker side -----------------------------------------------------------------------
    def claim(
        self, conn: Connection, owner: str, limit: int, lease_seconds: float
    ) -> list[CommandRecord]:
        _async_commit(conn)
        now = utcnow()
        due = (
            sa.select(oc.c.command_id)
            .where(oc.c.status == "PENDING", oc.c.next_attempt_at <= now)
            .order_by(oc.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = conn.execute(
            sa.update(oc)
            .where(oc.c.command_id.in_(due.scalar_subquery()))
            .values(
                status="RUNNING",
                attempts=oc.c.attempts + 1,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=now,
            )
            .returning(*RECORD_COLUMNS)
        ).all()
        records = [_record(r) for r in rows]
        audit.started(conn, owner, records)
        return records

    def hold(self, conn: Connection, owner: str, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not ids:
            return set()
        rows = conn.execute(
            sa.select(oc.c.command_id)
            .where(oc.c.command_id.in_(ids), oc.c.lease_owner == owner, oc.c.status == "RUNNING")
            .with_for_update()
        ).scalars()
        return set(rows)

    def complete(
        self, conn: Connection, owner: str, results: Sequence[tuple[CommandRecord, dict[str, Any]]]
    ) -> None:
        if not results:
            return
        # One statement for the whole batch: UPDATE … FROM unnest(ids, outputs).
        conn.execute(
            _COMPLETE_MANY,
            {
                "ids": [r.command_id for r, _ in results],
                "outputs": [Jsonb(out) for _, out in results],
                "owner": owner,
                "now": utcnow(),
            },
        )
        audit.succeeded(conn, owner, results)

    def fail(
        self,
        conn: Connection,
        owner: str,
        record: CommandRecord,
        error: str,
        retry_at: datetime | None,
    ) -> str | None:
        now = utcnow()
        values: dict[str, Any] = {
            "error_message": error[:2000],
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if retry_at is not None:
            values.update(status="PENDING", next_attempt_at=retry_at)
        else:
            values.update(status="ERROR", completed_at=now)
        changed = conn.execute(
            sa.update(oc)
            .where(
                oc.c.command_id == record.command_id,
                oc.c.lease_owner == owner,
                oc.c.status == "RUNNING",
            )
            .values(**values)
        ).rowcount
        if not changed:
            return None
        audit.failed(conn, owner, record, error, retry_at)
        return str(values["status"])

    def renew_leases(self, conn: Connection, owner: str, lease_seconds: float) -> int:
        _async_commit(conn)
        # Rows locked by an open batch transaction are skipped: nobody can take them anyway.
        mine = (
            sa.select(oc.c.command_id)
            .where(oc.c.lease_owner == owner, oc.c.status == "RUNNING")
            .with_for_update(skip_locked=True)
        )
        return int(
            conn.execute(
                sa.update(oc)
                .where(oc.c.command_id.in_(mine.scalar_subquery()))
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            ).rowcount
            or 0
        )

    def release_expired(self, conn: Connection, limit: int = 500) -> int:
        now = utcnow()
        rows = conn.execute(
            sa.select(*RECORD_COLUMNS)
            .where(oc.c.status == "RUNNING", oc.c.lease_expires_at < now)
            .order_by(oc.c.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        records = [_record(r) for r in rows]
        if not records:
            return 0
        retry = [r.command_id for r in records if r.attempts < r.max_attempts]
        dead = [r.command_id for r in records if r.attempts >= r.max_attempts]
        cleared = {"lease_owner": None, "lease_expires_at": None}
        if retry:
            conn.execute(
                sa.update(oc)
                .where(oc.c.command_id.in_(retry))
                .values(status="PENDING", next_attempt_at=now, **cleared)
            )
        if dead:
            conn.execute(
                sa.update(oc)
                .where(oc.c.command_id.in_(dead))
                .values(
                    status="ERROR",
                    completed_at=now,
                    error_message="The worker running this command stopped (lease expired) "
                    "and no attempts are left",
                    **cleared,
                )
            )
        audit.leases_expired(conn, records, set(dead))
        if retry:
            self.notify(conn)
        return len(records)

    def backlog(self, conn: Connection) -> Backlog:
        """Pending and running counts, how long the oldest *due* pending command has been
        waiting (a retry scheduled for later is not late), and the dead letters."""
        now = utcnow()
        row = conn.execute(
            sa.select(
                sa.func.count().filter(oc.c.status == "PENDING"),
                sa.func.count().filter(oc.c.status == "RUNNING"),
                sa.func.min(oc.c.next_attempt_at).filter(
                    oc.c.status == "PENDING", oc.c.next_attempt_at <= now
                ),
            ).where(oc.c.status.in_(("PENDING", "RUNNING")))
        ).one()
        dead = conn.execute(
            sa.select(sa.func.count())
            .select_from(oc)
            .where(oc.c.status == "ERROR", oc.c.attempts >= oc.c.max_attempts)
        ).scalar_one()
        oldest = row[2]
        age = None
        if oldest is not None:
            age = round(max(0.0, (now - oldest).total_seconds()), 3)
        return Backlog(int(row[0]), int(row[1]), age, int(dead))

    def redrive(
        self, conn: Connection, limit: int, tenant_id: uuid.UUID | None, actor: Actor
    ) -> list[uuid.UUID]:
        conditions = [oc.c.status == "ERROR", oc.c.attempts >= oc.c.max_attempts]
        if tenant_id is not None:
            conditions.append(oc.c.tenant_id == tenant_id)
        rows = conn.execute(
            sa.select(*RECORD_COLUMNS)
            .where(*conditions)
            .order_by(oc.c.completed_at, oc.c.command_id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        records = [_record(r) for r in rows]
        ids = [r.command_id for r in records]
        if not ids:
            return []
        conn.execute(
            sa.update(oc)
            .where(oc.c.command_id.in_(ids))
            .values(
                status="PENDING",
                attempts=0,
                next_attempt_at=utcnow(),
                started_at=None,
                completed_at=None,
                output=None,
                error_message=None,
            )
        )
        audit.redriven(conn, records, actor)
        self.notify(conn)
        return ids

    def purge_expired(self, conn: Connection, limit: int = 5000) -> int:
        expired = (
            sa.select(oc.c.command_id)
            .where(oc.c.expires_at <= utcnow(), oc.c.status != "RUNNING")
            .limit(limit)
        )
        return int(
            conn.execute(
                sa.delete(oc).where(oc.c.command_id.in_(expired.scalar_subquery()))
            ).rowcount
            or 0
        )


def _async_commit(conn: Connection) -> None:
    """Don't wait for the WAL flush when this transaction commits. Safe for a claim or a lease
    renewal: if the database crashes before the flush, the claim is simply lost (the command is
    still PENDING); and the WAL is sequential, so the durable commit of the command's result
    also makes its claim durable."""
    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
