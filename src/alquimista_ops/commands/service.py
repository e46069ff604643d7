"""Issuing, reading and cancelling operational commands (the caller owns the transaction)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.auth.principal import Principal
from alquimista_ops.commands import queries, specs
from alquimista_ops.commands.audit import Actor
from alquimista_ops.commands.model import CommandQuery, CommandRecord, NewCommand
from alquimista_ops.commands.store import CommandStore
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from alquimista_ops.core.reads import Reads

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True)
class CommandPolicy:
    max_attempts: int = 5
    retention_days: int = 90


def actor_of(principal: Principal, ip: str | None = None, user_agent: str | None = None) -> Actor:
    return Actor(principal.sub, principal.email, ip, (user_agent or "")[:512] or None)


def _check_allowed(principal: Principal, spec: specs.CommandSpec) -> None:
    if spec.admin_only and not principal.is_internal_admin:
        raise Forbidden(
            f"{spec.name} can only be issued by INTERNAL_ADMIN",
            details={"field": "command_type"},
        )


def request_hash(command_type: str, tenant_id: uuid.UUID | None, parameters: dict[str, Any]) -> str:
    canonical = json.dumps(
        {
            "command_type": command_type,
            "tenant_id": str(tenant_id) if tenant_id else None,
            "parameters": parameters,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _resolve_tenant(
    spec: specs.CommandSpec, tenant_id: uuid.UUID | None, parameters: dict[str, Any]
) -> tuple[uuid.UUID | None, dict[str, Any]]:
    """``tenant_id`` comes in the body; ``parameters.tenant_id`` is accepted as the same thing."""
    params = dict(parameters)
    if "tenant_id" in params:
        raw = params.pop("tenant_id")
        if raw is not None:
            from_params = uuid.UUID(specs.parse_uuid("tenant_id", raw))
            if tenant_id is not None and tenant_id != from_params:
                raise ValidationFailed(
                    "tenant_id and parameters.tenant_id differ",
                    details={"field": "parameters.tenant_id"},
                )
            tenant_id = from_params
    if spec.tenant == "required" and tenant_id is None:
        raise ValidationFailed(f"{spec.name} needs tenant_id", details={"field": "tenant_id"})
    return tenant_id, params


def _check_targets(
    conn: Connection, spec: specs.CommandSpec, tenant_id: uuid.UUID | None, params: dict[str, Any]
) -> None:
    if tenant_id is None:
        return
    if queries.tenant_row(conn, tenant_id) is None:
        raise NotFound(f"Tenant {tenant_id} not found", details={"field": "tenant_id"})
    if "agent_id" in params and (
        queries.tenant_agent_row(conn, tenant_id, uuid.UUID(params["agent_id"])) is None
    ):
        raise NotFound(
            f"Agent {params['agent_id']} is not activated for tenant {tenant_id}",
            details={"field": "parameters.agent_id"},
        )
    if "integration_id" in params and (
        queries.integration_row(conn, tenant_id, uuid.UUID(params["integration_id"])) is None
    ):
        raise NotFound(
            f"Integration {params['integration_id']} not found for tenant {tenant_id}",
            details={"field": "parameters.integration_id"},
        )


def create_command(
    conn: Connection,
    store: CommandStore,
    actor_principal: Principal,
    actor: Actor,
    command_type: str,
    tenant_id: uuid.UUID | None,
    parameters: dict[str, Any],
    idempotency_key: str | None,
    policy: CommandPolicy,
) -> tuple[CommandRecord, bool]:
    """Validate and store a PENDING command; ``(record, created)`` (False: a replay)."""
    spec = specs.spec_for(command_type)
    _check_allowed(actor_principal, spec)
    if idempotency_key is not None and not _KEY_RE.match(idempotency_key):
        raise ValidationFailed(
            "Idempotency-Key must be 1 to 128 printable ASCII characters",
            details={"field": "Idempotency-Key"},
        )
    tenant_id, raw = _resolve_tenant(spec, tenant_id, parameters)
    params = specs.normalize_parameters(spec, raw)
    _check_targets(conn, spec, tenant_id, params)
    now = utcnow()
    new = NewCommand(
        command_id=uuid.uuid4(),
        command_type=spec.name,
        tenant_id=tenant_id,
        parameters=params,
        created_by=actor.user_id,
        created_by_email=actor.email,
        created_at=now,
        max_attempts=policy.max_attempts,
        expires_at=now + timedelta(days=policy.retention_days),
        idempotency_key=idempotency_key,
        request_hash=request_hash(spec.name, tenant_id, params),
    )
    return store.create(conn, new, actor)


async def list_commands(reads: Reads, store: CommandStore, query: CommandQuery) -> dict[str, Any]:
    records, total = await store.read_page(reads, query)
    return {
        "commands": [command_view(r) for r in records],
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
    }


async def get_command(reads: Reads, store: CommandStore, command_id: uuid.UUID) -> dict[str, Any]:
    record = await store.read_one(reads, command_id)
    if record is None:
        raise NotFound(f"Command {command_id} not found")
    return command_view(record)


def cancel_command(
    conn: Connection,
    store: CommandStore,
    principal: Principal,
    actor: Actor,
    command_id: uuid.UUID,
) -> dict[str, Any]:
    record = store.get(conn, command_id)
    if record is None:
        raise NotFound(f"Command {command_id} not found")
    _check_allowed(principal, specs.spec_for(record.command_type))
    cancelled = store.cancel(conn, command_id, actor) if record.status == "PENDING" else None
    if cancelled is None:
        current = store.get(conn, command_id)
        status = current.status if current else record.status
        raise Conflict(
            f"Command {command_id} is {status}; only a PENDING command can be cancelled",
            code="COMMAND_NOT_PENDING",
            details={"status": status},
        )
    return command_view(cancelled)


def command_view(record: CommandRecord) -> dict[str, Any]:
    return {
        "command_id": record.command_id,
        "command_type": record.command_type,
        "status": record.status,
        "tenant_id": record.tenant_id,
        "tenant_name": record.tenant_name,
        "parameters": record.parameters,
        "created_by": record.created_by,
        "created_by_email": record.created_by_email,
        "created_at": record.created_at,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "output": record.output,
        "error_message": record.error_message,
        "attempts": record.attempts,
        "max_attempts": record.max_attempts,
        "next_attempt_at": record.next_attempt_at if record.status == "PENDING" else None,
        "dead_letter": record.dead_letter,
        "expires_at": record.expires_at,
    }
