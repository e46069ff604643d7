"""``GET /metrics`` (Prometheus text format), for internal users, the configured
``METRICS_TOKEN`` or client addresses of ``METRICS_ALLOW_FROM``."""

from __future__ import annotations

import ipaddress
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from alquimista_ops.auth.deps import bearer_token
from alquimista_ops.core.errors import Forbidden, NotFound, Unauthorized
from alquimista_ops.observability import metrics
from alquimista_ops.runtime import Runtime, RuntimeDep

router = APIRouter(tags=["health"])


def _address_allowed(runtime: Runtime, request: Request) -> bool:
    allowed = runtime.settings.metrics_allow_from
    if not allowed or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


async def _authorize(runtime: Runtime, request: Request) -> None:
    if _address_allowed(runtime, request):
        return
    token = bearer_token(request)
    if not token:
        raise Unauthorized("Metrics need a bearer token")
    expected = runtime.settings.metrics_token
    if expected and secrets.compare_digest(token.encode(), expected.encode()):
        return
    principal = runtime.verifier.cached(token)
    if principal is None:
        principal = await run_in_threadpool(runtime.verifier.verify, token)
    if not principal.is_internal:
        raise Forbidden("Metrics are for AlquimistaAI staff only")


@router.get(
    "/metrics",
    summary="Prometheus metrics (internal users, METRICS_TOKEN or METRICS_ALLOW_FROM)",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}},
)
async def get_metrics(request: Request, runtime: RuntimeDep) -> Response:
    if not runtime.settings.metrics_enabled:
        raise NotFound("Not found")
    await _authorize(runtime, request)
    http, database = metrics_of(request)
    body = await run_in_threadpool(metrics.render, http, database)
    return Response(content=body, media_type=metrics.CONTENT_TYPE)


def metrics_of(request: Request) -> tuple[metrics.HttpMetrics, metrics.DatabaseCollector]:
    state = request.app.state
    return state.http_metrics, state.database_metrics
