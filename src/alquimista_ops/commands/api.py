"""Routes of the operational commands (internal staff only)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from alquimista_ops.auth.deps import InternalDep, StaffReadDep
from alquimista_ops.commands import service
from alquimista_ops.commands.model import CommandQuery
from alquimista_ops.commands.runtime_hooks import store_for
from alquimista_ops.commands.schemas import Command, CommandCreate, CommandCreated, CommandList
from alquimista_ops.core.deps import DbDep
from alquimista_ops.core.errors import ValidationFailed
from alquimista_ops.core.params import Page, page_param
from alquimista_ops.core.schema import CommandStatus, CommandType
from alquimista_ops.runtime import RuntimeDep

router = APIRouter(prefix="/internal/operations/commands", tags=["operations"])

NO_STORE = {"Cache-Control": "private, max-age=0", "X-Cache": "MISS"}


def reject_query_parameters(request: Request) -> None:
    unknown = sorted(set(request.query_params))
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter(s): {', '.join(unknown)}",
            details={"field": unknown[0], "unknown": unknown},
        )


def _policy(runtime: RuntimeDep) -> service.CommandPolicy:
    s = runtime.settings
    return service.CommandPolicy(s.command_max_attempts, s.command_retention_days)


def _actor(request: Request, principal: Any) -> Any:
    host = request.client.host if request.client else None
    return service.actor_of(principal, host, request.headers.get("user-agent"))


@router.post(
    "",
    status_code=201,
    response_model=CommandCreated,
    summary="Issue an operational command (replaying an Idempotency-Key returns it: 200)",
    responses={200: {"model": CommandCreated, "description": "Idempotent replay"}},
    dependencies=[Depends(reject_query_parameters)],
)
def create_command(
    body: CommandCreate,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    principal: InternalDep,
    conn: DbDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    record, created = service.create_command(
        conn,
        store_for(runtime),
        principal,
        _actor(request, principal),
        body.command_type,
        body.tenant_id,
        body.parameters,
        idempotency_key,
        _policy(runtime),
    )
    response.status_code = 201 if created else 200
    response.headers["Location"] = f"/internal/operations/commands/{record.command_id}"
    return {
        "command_id": record.command_id,
        "command_type": record.command_type,
        "status": record.status,
        "created_at": record.created_at,
    }


@router.get("", response_model=CommandList, summary="Commands, newest first, with a true total")
async def list_commands(
    response: Response,
    runtime: RuntimeDep,
    read: StaffReadDep,
    status: Annotated[CommandStatus | None, Query()] = None,
    command_type: Annotated[CommandType | None, Query()] = None,
    tenant_id: Annotated[uuid.UUID | None, Query()] = None,
    page: Page = page_param(50, 200),
) -> dict[str, Any]:
    response.headers.update(NO_STORE)
    query = CommandQuery(status, command_type, tenant_id, page.limit, page.offset)
    store = store_for(runtime)
    return await read.run(lambda reads: service.list_commands(reads, store, query))


@router.get("/{command_id}", response_model=Command, summary="One command")
async def get_command(
    command_id: uuid.UUID,
    response: Response,
    runtime: RuntimeDep,
    read: StaffReadDep,
) -> dict[str, Any]:
    response.headers.update(NO_STORE)
    store = store_for(runtime)
    return await read.run(lambda reads: service.get_command(reads, store, command_id))


@router.post(
    "/{command_id}/cancel",
    response_model=Command,
    summary="Cancel a PENDING command (409 once it has started)",
    dependencies=[Depends(reject_query_parameters)],
)
def cancel_command(
    command_id: uuid.UUID,
    request: Request,
    runtime: RuntimeDep,
    principal: InternalDep,
    conn: DbDep,
) -> dict[str, Any]:
    return service.cancel_command(
        conn, store_for(runtime), principal, _actor(request, principal), command_id
    )
