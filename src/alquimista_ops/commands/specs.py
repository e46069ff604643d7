"""The command types of PRODUCT.md §6: who may issue them and how their parameters are checked.

Pure functions (no database): the service adds the existence checks (tenant, agent,
integration of that tenant) on top of this shape validation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from alquimista_ops.core.errors import ValidationFailed
from alquimista_ops.core.params import MAX_RANGE_DAYS
from alquimista_ops.core.schema import COMMAND_TYPES

# Queues whose dead letters REPROCESS_QUEUE can re-drive. Locally the tool's own dead letters
# (commands that exhausted their attempts); the AWS adapter adds its SQS queues.
COMMANDS_QUEUE = "commands"
KNOWN_QUEUES = (COMMANDS_QUEUE,)
MAX_REDRIVE = 1000
DEFAULT_REDRIVE = 100
MAX_REASON_CHARS = 500

Parser = Callable[[str, Any], Any]


def _field(name: str) -> str:
    return f"parameters.{name}"


def parse_uuid(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(
            f"{_field(name)} must be a UUID string", details={"field": _field(name)}
        )
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValidationFailed(
            f"{_field(name)} is not a valid UUID", details={"field": _field(name)}
        ) from None


def parse_reason(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(
            f"{_field(name)} must be a non-empty string", details={"field": _field(name)}
        )
    if "\x00" in value:
        raise ValidationFailed(
            f"{_field(name)} may not contain NUL characters", details={"field": _field(name)}
        )
    if len(value) > MAX_REASON_CHARS:
        raise ValidationFailed(
            f"{_field(name)} has at most {MAX_REASON_CHARS} characters",
            details={"field": _field(name)},
        )
    return value.strip()


def parse_date(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(
            f"{_field(name)} must be a date (YYYY-MM-DD)", details={"field": _field(name)}
        )
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValidationFailed(
            f"{_field(name)} is not a valid date (YYYY-MM-DD)", details={"field": _field(name)}
        ) from None


def parse_queue(name: str, value: Any) -> str:
    if not isinstance(value, str) or value not in KNOWN_QUEUES:
        raise ValidationFailed(
            f"{_field(name)} must be one of: {', '.join(KNOWN_QUEUES)}",
            details={"field": _field(name), "allowed": list(KNOWN_QUEUES)},
        )
    return value


def parse_limit(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REDRIVE:
        raise ValidationFailed(
            f"{_field(name)} must be an integer between 1 and {MAX_REDRIVE}",
            details={"field": _field(name)},
        )
    return value


@dataclass(frozen=True)
class CommandSpec:
    name: str
    admin_only: bool
    tenant: str  # "required", "optional"
    required: Mapping[str, Parser]
    optional: Mapping[str, Parser]
    description: str


SPECS: dict[str, CommandSpec] = {
    spec.name: spec
    for spec in (
        CommandSpec(
            "HEALTH_CHECK",
            False,
            "optional",
            {},
            {},
            "Database, cache and worker backlog; for a tenant also its integrations and agents",
        ),
        CommandSpec(
            "RESTART_AGENT",
            False,
            "required",
            {"agent_id": parse_uuid},
            {},
            "Agent back to active, error cleared, restart recorded",
        ),
        CommandSpec(
            "RESET_TOKEN",
            False,
            "required",
            {"integration_id": parse_uuid},
            {},
            "Integration to pending, credentials and last error cleared",
        ),
        CommandSpec(
            "REPROCESS_QUEUE",
            False,
            "optional",
            {"queue_name": parse_queue},
            {"limit": parse_limit},
            "Re-drive dead-lettered messages of a queue to its source",
        ),
        CommandSpec(
            "PAUSE_AGENT", True, "required", {"agent_id": parse_uuid}, {}, "Agent to inactive"
        ),
        CommandSpec(
            "SUSPEND_TENANT",
            True,
            "required",
            {"reason": parse_reason},
            {},
            "Tenant suspended (its users get 403 TENANT_SUSPENDED)",
        ),
        CommandSpec(
            "REACTIVATE_TENANT",
            True,
            "required",
            {"reason": parse_reason},
            {},
            "Suspended tenant back to active",
        ),
        CommandSpec(
            "RECOMPUTE_USAGE",
            False,
            "optional",
            {"from": parse_date, "to": parse_date},
            {},
            "Re-run the daily usage rollup for a date range",
        ),
        CommandSpec(
            "CLEAR_CACHE", False, "optional", {}, {}, "Purge the cache keys of a tenant or all"
        ),
    )
}
assert tuple(SPECS) == COMMAND_TYPES


def spec_for(command_type: str) -> CommandSpec:
    spec = SPECS.get(command_type)
    if spec is None:
        raise ValidationFailed(
            f"Unknown command_type: {command_type}",
            details={"field": "command_type", "allowed": list(COMMAND_TYPES)},
        )
    return spec


def normalize_parameters(spec: CommandSpec, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and types of a command's parameters; return their canonical form."""
    unknown = sorted(set(parameters) - set(spec.required) - set(spec.optional))
    if unknown:
        raise ValidationFailed(
            f"Unknown parameter(s) for {spec.name}: {', '.join(unknown)}",
            details={"field": _field(unknown[0]), "unknown": [_field(u) for u in unknown]},
        )
    result: dict[str, Any] = {}
    for name, parse in spec.required.items():
        if name not in parameters or parameters[name] is None:
            raise ValidationFailed(
                f"{spec.name} needs parameter {name}", details={"field": _field(name)}
            )
        result[name] = parse(name, parameters[name])
    for name, parse in spec.optional.items():
        if parameters.get(name) is not None:
            result[name] = parse(name, parameters[name])
    if spec.name == "RECOMPUTE_USAGE":
        start, end = date.fromisoformat(result["from"]), date.fromisoformat(result["to"])
        if end < start:
            raise ValidationFailed(
                "parameters.to is before parameters.from", details={"field": "parameters.to"}
            )
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationFailed(
                f"A recompute covers at most {MAX_RANGE_DAYS} days",
                details={"field": "parameters.to"},
            )
    if spec.name == "REPROCESS_QUEUE":
        result.setdefault("limit", DEFAULT_REDRIVE)
    return result
