"""One handler per command type: the real effect on the data.

A handler is a function of a ``HandlerContext`` (the relational connection of the effect's
transaction, the command, and a few callables) returning the command's output JSON. Handlers
know nothing of where commands are stored: the SQL worker and the AWS (DynamoDB stream) adapter
build their own context and share these functions.

Handlers are idempotent (they set states, never increment), and the SQL worker commits a
handler's effects in the same transaction that marks the command SUCCESS, so an effect is
applied once even when a worker dies and the command runs again.

A handler raises ``CommandFailed(permanent=True)`` when running it again cannot help (the
agent was removed, say); any other exception is transient and retried with backoff.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.commands import queries
from alquimista_ops.commands.model import Backlog, CommandRecord
from alquimista_ops.commands.specs import COMMANDS_QUEUE
from alquimista_ops.core.numbers import rate
from alquimista_ops.usage.rollup import rollup_range

# Health thresholds (a report is "degraded" beyond them).
BACKLOG_AGE_DEGRADED_SECONDS = 300.0
AGENT_ERROR_RATE_DEGRADED = 10.0  # percent of the last 7 days' requests
AGENT_ERROR_RATE_MIN_REQUESTS = 20
HEALTH_WINDOW_DAYS = 7


class CommandFailed(Exception):
    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


def _no_purge(_tenant_id: uuid.UUID | None) -> int:
    return 0


def _no_ping() -> str:
    return "not_configured"


@dataclass
class CacheHooks:
    """How commands reach the read cache.

    ``purge(tenant_id | None) -> int`` deletes the keys of one tenant (or all keys) and returns
    how many; ``ping() -> str`` answers ``ok``, ``not_configured`` or ``unavailable: …``.
    Built by ``commands.runtime_hooks.cache_hooks_for`` (the one wiring point).
    """

    purge: Callable[[uuid.UUID | None], int] = _no_purge
    ping: Callable[[], str] = _no_ping


def _no_backlog() -> Backlog:
    return Backlog(0, 0, None, 0)


def _no_redrive(_queue: str, _limit: int, _tenant: uuid.UUID | None) -> list[uuid.UUID]:
    raise CommandFailed("No dead-letter queue is available in this context")


@dataclass
class HandlerContext:
    conn: Connection
    command: CommandRecord
    now: datetime
    cache: CacheHooks = field(default_factory=CacheHooks)
    backlog: Callable[[], Backlog] = _no_backlog
    # (queue_name, limit, tenant_id) -> ids re-driven, in the same transaction as the command.
    redrive: Callable[[str, int, uuid.UUID | None], list[uuid.UUID]] = _no_redrive
    # Tenants (None = all) whose cache keys the effect changed; purged after commit.
    invalidations: list[uuid.UUID | None] = field(default_factory=list)
    # operational_events rows of the effects, not yet written: the runner writes them in bulk
    # in the same transaction, right before it marks the commands SUCCESS. The SQL worker
    # shares one list across a batch, so a handler sees the earlier commands' pending rows.
    events: list[dict[str, Any]] = field(default_factory=list)

    def invalidate(self, tenant_id: uuid.UUID | None) -> None:
        if tenant_id not in self.invalidations:
            self.invalidations.append(tenant_id)

    @property
    def tenant_id(self) -> uuid.UUID:
        if self.command.tenant_id is None:
            raise CommandFailed(f"{self.command.command_type} needs a tenant")
        return self.command.tenant_id

    def effect_event(
        self,
        event_type: str,
        category: str,
        title: str,
        resource_type: str,
        resource_id: str,
        details: dict[str, Any],
        description: str | None = None,
    ) -> None:
        self.events.append(
            {
                "id": uuid.uuid4(),
                "event_type": event_type,
                "event_category": category,
                "tenant_id": self.command.tenant_id,
                "user_id": self.command.created_by,
                "user_email": self.command.created_by_email,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "action": event_type.split(".")[-1],
                "status": "success",
                "severity": "info",
                "title": title,
                "description": description,
                "details": {"command_id": str(self.command.command_id), **details},
                "ip_address": None,
                "user_agent": None,
                "created_at": self.now,
                "resolved_at": None,
            }
        )


Handler = Callable[[HandlerContext], dict[str, Any]]


def _uuid_param(ctx: HandlerContext, name: str) -> uuid.UUID:
    return uuid.UUID(str(ctx.command.parameters[name]))


def _activation(ctx: HandlerContext) -> Any:
    agent_id = _uuid_param(ctx, "agent_id")
    row = queries.tenant_agent_row(ctx.conn, ctx.tenant_id, agent_id)
    if row is None:
        raise CommandFailed(f"Agent {agent_id} is not activated for tenant {ctx.tenant_id}")
    return row


def restart_agent(ctx: HandlerContext) -> dict[str, Any]:
    row = _activation(ctx)
    queries.set_tenant_agent_status(
        ctx.conn,
        row.id,
        {
            "status": "active",
            "last_error": None,
            "last_restart_at": ctx.now,
            "deactivated_at": None,
            "updated_at": ctx.now,
        },
    )
    ctx.effect_event(
        "agent.restarted",
        "agent",
        f"Agent {row.name} restarted",
        "tenant_agent",
        str(row.id),
        {
            "agent_id": str(row.agent_id),
            "previous_status": row.status,
            "cleared_error": row.last_error,
        },
    )
    ctx.invalidate(ctx.tenant_id)
    return {
        "tenant_id": str(ctx.tenant_id),
        "agent_id": str(row.agent_id),
        "agent_name": row.name,
        "previous_status": row.status,
        "status": "active",
        "cleared_error": row.last_error,
        "restarted_at": ctx.now.isoformat(),
    }


def pause_agent(ctx: HandlerContext) -> dict[str, Any]:
    row = _activation(ctx)
    changed = row.status != "inactive"
    if changed:
        queries.set_tenant_agent_status(
            ctx.conn,
            row.id,
            {"status": "inactive", "deactivated_at": ctx.now, "updated_at": ctx.now},
        )
        ctx.effect_event(
            "agent.paused",
            "agent",
            f"Agent {row.name} paused",
            "tenant_agent",
            str(row.id),
            {"agent_id": str(row.agent_id), "previous_status": row.status},
        )
        ctx.invalidate(ctx.tenant_id)
    return {
        "tenant_id": str(ctx.tenant_id),
        "agent_id": str(row.agent_id),
        "agent_name": row.name,
        "previous_status": row.status,
        "status": "inactive",
        "changed": changed,
    }


def reset_token(ctx: HandlerContext) -> dict[str, Any]:
    integration_id = _uuid_param(ctx, "integration_id")
    row = queries.integration_row(ctx.conn, ctx.tenant_id, integration_id)
    if row is None:
        raise CommandFailed(
            f"Integration {integration_id} does not belong to tenant {ctx.tenant_id}"
        )
    queries.reset_integration(ctx.conn, row.id, ctx.now)
    ctx.effect_event(
        "integration.token_reset",
        "integration",
        f"Integration {row.integration_name} token reset",
        "tenant_integration",
        str(row.id),
        {"previous_status": row.status, "credentials_cleared": bool(row.had_credentials)},
    )
    ctx.invalidate(ctx.tenant_id)
    return {
        "tenant_id": str(ctx.tenant_id),
        "integration_id": str(row.id),
        "integration_type": row.integration_type,
        "integration_name": row.integration_name,
        "previous_status": row.status,
        "status": "pending",
        "credentials_cleared": bool(row.had_credentials),
        "cleared_error": row.last_error,
    }


def _tenant(ctx: HandlerContext) -> Any:
    row = queries.tenant_row(ctx.conn, ctx.tenant_id)
    if row is None:
        raise CommandFailed(f"Tenant {ctx.tenant_id} no longer exists")
    return row


def _status_change(row: Any, status: str, changed: bool, reason: str) -> dict[str, Any]:
    """The output of SUSPEND_TENANT / REACTIVATE_TENANT."""
    return {
        "tenant_id": str(row.id),
        "tenant_name": row.name,
        "previous_status": row.status,
        "status": status,
        "changed": changed,
        "reason": reason,
    }


def suspend_tenant(ctx: HandlerContext) -> dict[str, Any]:
    row = _tenant(ctx)
    reason = str(ctx.command.parameters["reason"])
    changed = row.status != "suspended"
    if changed:
        queries.set_tenant_status(ctx.conn, row.id, "suspended", ctx.now)
        ctx.effect_event(
            "tenant.suspended",
            "tenant",
            f"Tenant {row.name} suspended",
            "tenant",
            str(row.id),
            {"previous_status": row.status, "reason": reason},
            description=reason,
        )
        ctx.invalidate(row.id)
    return _status_change(row, "suspended", changed, reason)


def _pending_suspension_status(ctx: HandlerContext, tenant_id: uuid.UUID) -> str | None:
    for event in reversed(ctx.events):
        if event["event_type"] == "tenant.suspended" and event["tenant_id"] == tenant_id:
            return str(event["details"].get("previous_status") or "") or None
    return None


def reactivate_tenant(ctx: HandlerContext) -> dict[str, Any]:
    row = _tenant(ctx)
    reason = str(ctx.command.parameters["reason"])
    if row.status != "suspended":
        return _status_change(row, row.status, False, reason)
    # Back to what it was before the suspension (a trial stays a trial), active otherwise.
    before = _pending_suspension_status(ctx, row.id) or queries.last_suspension_previous_status(
        ctx.conn, row.id
    )
    status = before if before in ("active", "trial") else "active"
    queries.set_tenant_status(ctx.conn, row.id, status, ctx.now)
    ctx.effect_event(
        "tenant.reactivated",
        "tenant",
        f"Tenant {row.name} reactivated",
        "tenant",
        str(row.id),
        {"previous_status": row.status, "status": status, "reason": reason},
        description=reason,
    )
    ctx.invalidate(row.id)
    return _status_change(row, status, True, reason)


def recompute_usage(ctx: HandlerContext) -> dict[str, Any]:
    start = date.fromisoformat(str(ctx.command.parameters["from"]))
    end = date.fromisoformat(str(ctx.command.parameters["to"]))
    # The rollup is range-wide: re-running it for one tenant's request re-runs every tenant's
    # rows of the range (same result for the others: the rollup is deterministic).
    result = rollup_range(ctx.conn, start, end)
    ctx.invalidate(None)
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "requested_tenant_id": str(ctx.command.tenant_id) if ctx.command.tenant_id else None,
        "scope": "all tenants",
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
    }


def clear_cache(ctx: HandlerContext) -> dict[str, Any]:
    purged = ctx.cache.purge(ctx.command.tenant_id)
    return {
        "tenant_id": str(ctx.command.tenant_id) if ctx.command.tenant_id else None,
        "scope": "tenant" if ctx.command.tenant_id else "all",
        "keys_purged": purged,
        "cache": ctx.cache.ping(),
    }


def reprocess_queue(ctx: HandlerContext) -> dict[str, Any]:
    queue = str(ctx.command.parameters["queue_name"])
    limit = int(ctx.command.parameters.get("limit", 100))
    if queue != COMMANDS_QUEUE:
        raise CommandFailed(f"Unknown queue: {queue}")
    ids = ctx.redrive(queue, limit, ctx.command.tenant_id)
    return {
        "queue_name": queue,
        "limit": limit,
        "redriven": len(ids),
        "command_ids": [str(i) for i in ids],
    }


def health_check(ctx: HandlerContext) -> dict[str, Any]:
    started = time.perf_counter()
    ctx.conn.execute(sa.text("SELECT 1"))
    db_ms = round((time.perf_counter() - started) * 1000, 2)
    problems: list[str] = []
    checks: dict[str, Any] = {"database": {"status": "ok", "latency_ms": db_ms}}

    cache_status = ctx.cache.ping()
    checks["cache"] = {"status": cache_status}
    if cache_status.startswith("unavailable"):
        problems.append("cache unavailable")

    backlog = ctx.backlog()
    checks["worker"] = backlog.as_dict()
    # This health check is itself RUNNING: count only the others.
    checks["worker"]["running"] = max(0, backlog.running - 1)
    age = backlog.oldest_pending_age_seconds
    if age is not None and age > BACKLOG_AGE_DEGRADED_SECONDS:
        problems.append(f"oldest pending command waits for {age:.0f} s")

    report: dict[str, Any] = {"checks": checks}
    if ctx.command.tenant_id is not None:
        tenant = _tenant(ctx)
        since = ctx.now.date() - timedelta(days=HEALTH_WINDOW_DAYS - 1)
        failing = queries.integrations_in_error(ctx.conn, tenant.id)
        agents_report = []
        for row in queries.agent_error_rates(ctx.conn, tenant.id, since):
            error_rate = rate(row.failed, row.requests)
            unhealthy = row.status == "error" or (
                int(row.requests) >= AGENT_ERROR_RATE_MIN_REQUESTS
                and error_rate > AGENT_ERROR_RATE_DEGRADED
            )
            if unhealthy:
                problems.append(f"agent {row.name}: status {row.status}, error rate {error_rate}%")
            agents_report.append(
                {
                    "agent_id": str(row.agent_id),
                    "name": row.name,
                    "status": row.status,
                    "requests_last_7_days": int(row.requests),
                    "error_rate": error_rate,
                    "healthy": not unhealthy,
                }
            )
        for integ in failing:
            problems.append(f"integration {integ.integration_name} in error")
        if tenant.status == "suspended":
            problems.append("tenant suspended")
        report["tenant"] = {
            "tenant_id": str(tenant.id),
            "name": tenant.name,
            "status": tenant.status,
            "integrations_in_error": [
                {
                    "id": str(i.id),
                    "type": i.integration_type,
                    "name": i.integration_name,
                    "last_error": i.last_error,
                }
                for i in failing
            ],
            "agents": agents_report,
        }
    report["status"] = "degraded" if problems else "healthy"
    report["problems"] = problems
    report["checked_at"] = ctx.now.isoformat()
    return report


HANDLERS: dict[str, Handler] = {
    "HEALTH_CHECK": health_check,
    "RESTART_AGENT": restart_agent,
    "RESET_TOKEN": reset_token,
    "REPROCESS_QUEUE": reprocess_queue,
    "PAUSE_AGENT": pause_agent,
    "SUSPEND_TENANT": suspend_tenant,
    "REACTIVATE_TENANT": reactivate_tenant,
    "RECOMPUTE_USAGE": recompute_usage,
    "CLEAR_CACHE": clear_cache,
}
