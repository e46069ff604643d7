"""``POST /internal/ingest/agent-requests``: raw usage batches from the platform."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from alquimista_ops.auth.service_keys import IngestPrincipalDep
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.deps import DbDep
from alquimista_ops.runtime import RuntimeDep
from alquimista_ops.usage import ingest

router = APIRouter(tags=["ingestion"])


async def _raw_body(request: Request) -> bytes:
    return await request.body()


_RECORD_SCHEMA = {
    "type": "object",
    "required": list(ingest.FIELDS),
    "properties": {
        "request_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "tenant_id": {"type": "string", "format": "uuid"},
        "agent_id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": ["success", "error"]},
        "response_time_ms": {"type": "integer", "minimum": 0},
        "tokens_used": {"type": "integer", "minimum": 0},
        "created_at": {"type": "string", "format": "date-time"},
    },
}


@router.post(
    "/internal/ingest/agent-requests",
    summary="Ingest a batch of raw agent requests (service principals only)",
    description=(
        "A JSON array or JSON Lines (`application/x-ndjson`) of at most `INGEST_MAX_RECORDS` "
        "records (default 10,000). Authenticate with a service API key "
        "(`Authorization: Bearer aosk_…` or `X-API-Key`). The batch is all-or-nothing: any "
        "invalid record answers 400 naming each bad record's index, field and reason, and "
        "nothing is written. Records whose `request_id` is already stored are skipped and "
        "counted as duplicates, so a retried batch is safe."
    ),
    responses={
        403: {"description": "A user token instead of a service key, or a key without the scope"}
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": _RECORD_SCHEMA}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
def ingest_agent_requests(
    request: Request,
    conn: DbDep,
    runtime: RuntimeDep,
    principal: IngestPrincipalDep,
    body: Annotated[bytes, Depends(_raw_body)],
) -> dict[str, Any]:
    settings = runtime.settings
    records = ingest.parse_body(
        body, request.headers.get("content-type"), settings.ingest_max_records
    )
    validator = ingest.Validator(
        now=utcnow(),
        max_skew_seconds=settings.ingest_max_clock_skew_seconds,
        retention_days=settings.usage_raw_retention_days,
    )
    result = ingest.ingest_records(conn, records, validator)
    return {**result.as_dict(), "principal": principal.name}
