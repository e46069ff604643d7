"""Staff pages (``/company``): INTERNAL_ADMIN and INTERNAL_SUPPORT; billing for admins only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from alquimista_ops.commands import service as commands_service
from alquimista_ops.commands import specs
from alquimista_ops.commands.model import CommandQuery
from alquimista_ops.commands.runtime_hooks import store_for
from alquimista_ops.core.deps import RuntimeDep
from alquimista_ops.web.pages import page_context, render
from alquimista_ops.web.session import finish

router = APIRouter(include_in_schema=False)

HISTORY_SIZE = 20


def _field_kind(name: str, parser: Any) -> dict[str, Any]:
    """How the form renders one command parameter (derived from its parser)."""
    if parser is specs.parse_uuid:
        kind = "agent" if name == "agent_id" else "integration"
    elif parser is specs.parse_reason:
        kind = "reason"
    elif parser is specs.parse_date:
        kind = "date"
    elif parser is specs.parse_queue:
        kind = "queue"
    elif parser is specs.parse_limit:
        kind = "limit"
    else:  # pragma: no cover - a new parser needs a form field
        raise ValueError(f"no form field for parameter {name}")
    return {"name": name, "kind": kind}


def command_forms(is_admin: bool) -> list[dict[str, Any]]:
    forms = []
    for spec in specs.SPECS.values():
        if spec.admin_only and not is_admin:
            continue
        forms.append(
            {
                "type": spec.name,
                "admin_only": spec.admin_only,
                "tenant": spec.tenant,
                "description": spec.description,
                "required": [_field_kind(n, p) for n, p in spec.required.items()],
                "optional": [_field_kind(n, p) for n, p in spec.optional.items()],
            }
        )
    return forms


@router.get("/company/operations")
def operations_page(request: Request, runtime: RuntimeDep) -> Response:
    ctx = page_context(request, runtime, internal=True)
    with runtime.engine.begin() as conn:
        history = commands_service.list_commands(
            conn, store_for(runtime), CommandQuery(limit=HISTORY_SIZE)
        )
    forms = command_forms(ctx.principal.is_internal_admin)
    return finish(
        request,
        render(
            ctx,
            "company/operations.html",
            forms=forms,
            history=history,
            queues=list(specs.KNOWN_QUEUES),
            max_redrive=specs.MAX_REDRIVE,
            history_size=HISTORY_SIZE,
        ),
        runtime,
    )
