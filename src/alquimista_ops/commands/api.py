"""Routes of the operational commands (internal staff only)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sqlalchemy.engine import Connection

from alquimista_ops.auth.deps import InternalDep, StaffReadDep
from alquimista_ops.commands import service
from alquimista_ops.commands.model import CommandQuery
from alquimista_ops.commands.runtime_hooks import store_for, wakeup_for
from alquimista_ops.commands.schemas import (
    Command,
    CommandCreate,
    CommandCreated,
    CommandList,
    CommandStatus,
    CommandType,
)
from alquimista_ops.core.deps import RuntimeDep, gated_transaction
from alquimista_ops.core.errors import ValidationFailed
from alquimista_ops.core.params import Page, page_param

router = APIRouter(prefix="/internal/operations/commands", tags=["operations"])

NO_STORE = {"Cache-Control": "private, max-age=0", "X-Cache": "MISS"}


async def command_unit_of_work(runtime: RuntimeDep) -> AsyncIterator[Connection]:
    """The request's transaction for writes; after commit an in-process worker is woken
    (on PostgreSQL the store's NOTIFY is delivered by the commit itself)."""

    def wake_worker() -> None:
        wake = wakeup_for(runtime)
        if wake is not None:
            wake.set()

    async with gated_transaction(runtime.engine, after_commit=wake_worker) as conn:
        yield conn


# scope="function": the transaction commits before the response is sent (read your writes)
WriteDbDep = Annotated[Connection, Depends(command_unit_of_work, scope="function")]


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
    conn: WriteDbDep,
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
    return await read.db(
        lambda conn: service.list_commands(conn, store, query), other_io=not store.in_database
    )


@router.get("/{command_id}", response_model=Command, summary="One command")
async def get_command(
    command_id: uuid.UUID,
    response: Response,
    runtime: RuntimeDep,
    read: StaffReadDep,
) -> dict[str, Any]:
    response.headers.update(NO_STORE)
    store = store_for(runtime)
    return await read.db(
        lambda conn: service.get_command(conn, store, command_id), other_io=not store.in_database
    )


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
    conn: WriteDbDep,
) -> dict[str, Any]:
    return service.cancel_command(
        conn, store_for(runtime), principal, _actor(request, principal), command_id
    )
