"""Audit rows of the command lifecycle: one ``operational_events`` row (category ``command``)
per transition, with the actor, the tenant and the details.

Whatever store holds the commands (PostgreSQL here, DynamoDB on AWS), the audit trail lives
in the relational ``operational_events`` table, written in the caller's transaction: both
stores record each transition through the functions below.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.commands.model import CommandRecord, NewCommand
from alquimista_ops.core.bulk import bulk_insert
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.schema import operational_events


@dataclass(frozen=True)
class Actor:
    """Who a transition is attributed to (user id = token ``sub``)."""

    user_id: str
    email: str | None
    ip_address: str | None = None
    user_agent: str | None = None


# action -> (event status, title verb)
ACTIONS: dict[str, tuple[str, str]] = {
    "created": ("pending", "created"),
    "started": ("pending", "started"),
    "succeeded": ("success", "succeeded"),
    "retry_scheduled": ("failure", "failed; retry scheduled"),
    "failed": ("failure", "failed"),
    "cancelled": ("success", "cancelled"),
    "lease_expired": ("failure", "lost its worker (lease expired)"),
    "redriven": ("pending", "re-driven from the dead letters"),
}


def creator(record: CommandRecord) -> Actor:
    return Actor(record.created_by, record.created_by_email)


def event_row(
    action: str, record: CommandRecord, actor: Actor, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    status, verb = ACTIONS[action]
    return {
        "id": uuid.uuid4(),
        "event_type": f"command.{action}",
        "event_category": "command",
        "tenant_id": record.tenant_id,
        "user_id": actor.user_id,
        "user_email": actor.email,
        "resource_type": "command",
        "resource_id": str(record.command_id),
        "action": action,
        "status": status,
        "severity": "info",
        "title": f"Command {record.command_type} {verb}",
        "description": None,
        "details": {
            "command_id": str(record.command_id),
            "command_type": record.command_type,
            "attempt": record.attempts,
            **(details or {}),
        },
        "ip_address": actor.ip_address,
        "user_agent": actor.user_agent,
        "created_at": utcnow(),
    }


def write_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        # COPY on PostgreSQL (a batch of a few hundred rows in one round trip).
        columns = list(rows[0])
        bulk_insert(conn, operational_events, columns, ([r[c] for c in columns] for r in rows))


# -- the transitions, as every store records them -------------------------------------------
def created(conn: Connection, record: CommandRecord, actor: Actor, new: NewCommand) -> None:
    write_events(conn, [event_row("created", record, actor, {"parameters": new.parameters})])


def cancelled(conn: Connection, record: CommandRecord, actor: Actor) -> None:
    write_events(conn, [event_row("cancelled", record, actor)])


def started(conn: Connection, owner: str, records: Sequence[CommandRecord]) -> None:
    write_events(conn, [event_row("started", r, creator(r), {"worker": owner}) for r in records])


def succeeded(
    conn: Connection, owner: str, results: Sequence[tuple[CommandRecord, dict[str, Any]]]
) -> None:
    write_events(
        conn,
        [
            event_row("succeeded", r, creator(r), {"worker": owner, "output": out})
            for r, out in results
        ],
    )


def failed(conn: Connection, owner: str, record: CommandRecord, error: str, retry_at: Any) -> None:
    """A failed attempt: a retry at ``retry_at`` (a datetime), or the end (None)."""
    details: dict[str, Any] = {"worker": owner, "error": error[:2000]}
    if retry_at is not None:
        details["retry_at"] = retry_at.isoformat()
        write_events(conn, [event_row("retry_scheduled", record, creator(record), details)])
    else:
        details["dead_letter"] = record.attempts >= record.max_attempts
        write_events(conn, [event_row("failed", record, creator(record), details)])


def leases_expired(
    conn: Connection, records: Sequence[CommandRecord], dead: Collection[uuid.UUID]
) -> None:
    """Commands whose worker stopped: each back to PENDING, or to ERROR when in ``dead``."""
    events = []
    for r in records:
        details = {"worker": r.lease_owner, "lease_expires_at": str(r.lease_expires_at)}
        events.append(event_row("lease_expired", r, creator(r), details))
        if r.command_id in dead:
            events.append(event_row("failed", r, creator(r), {**details, "dead_letter": True}))
    write_events(conn, events)


def redriven(conn: Connection, records: Sequence[CommandRecord], actor: Actor) -> None:
    write_events(
        conn,
        [
            event_row(
                "redriven",
                r,
                actor,
                {"previous_error": r.error_message, "previous_attempts": r.attempts},
            )
            for r in records
        ],
    )
