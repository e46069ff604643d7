"""Lambda handlers of the twelve API routes (API Gateway HTTP API, payload format 2.0).

Each function serves one route (see ``layout.ROUTES``) and hands the event to the same
FastAPI app the HTTP server runs, through Mangum, so behaviour is identical. The Cognito JWT
authorizer's claims are read for log context and tracing only: the app verifies the bearer
token itself (signature, issuer, expiry, audience) and decides from the verified claims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from alquimista_ops.aws.lambda_runtime import (
    METRICS_NAMESPACE,
    get_bridge,
    logger,
    metrics,
    tracer,
)
from alquimista_ops.aws.layout import ROUTES, SERVICE_NAME, RouteFunction
from alquimista_ops.core.errors import error_body

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def authorizer_claims(event: dict[str, Any]) -> dict[str, Any]:
    """Claims the API Gateway JWT authorizer attached to the event (may be empty)."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or {}
    return claims if isinstance(claims, dict) else {}


def _route_mismatch(route: RouteFunction, route_key: str) -> dict[str, Any]:
    body = error_body("NOT_FOUND", f"This function serves {route.route_key}, not {route_key}", None)
    return {
        "statusCode": 404,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def record_request_metrics(route: RouteFunction, status: int, seconds: float) -> None:
    """Request count, latency and status class per route, and for the command
    route the outcome of each creation by command type."""
    metrics.add_dimension(name="route", value=route.name)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=seconds * 1000)
    metrics.add_metric(name=f"Status{status // 100}xx", unit=MetricUnit.Count, value=1)


def record_command_outcome(command_type: str, status: str) -> None:
    """One command outcome (``PENDING`` when accepted, ``REFUSED``, ``SUCCESS``, ``ERROR``)."""
    with single_metric(
        name="Commands", unit=MetricUnit.Count, value=1, namespace=METRICS_NAMESPACE
    ) as metric:
        metric.add_dimension(name="service", value=SERVICE_NAME)
        metric.add_dimension(name="command_type", value=command_type)
        metric.add_dimension(name="status", value=status)


def _command_outcome(route: RouteFunction, event: dict[str, Any], response: dict[str, Any]) -> None:
    if route.attr != "create_command":
        return
    try:
        requested = json.loads(event.get("body") or "{}").get("command_type")
    except (ValueError, AttributeError):
        requested = None
    accepted = int(response.get("statusCode", 0)) in (200, 201)
    record_command_outcome(str(requested or "unknown"), "PENDING" if accepted else "REFUSED")


def _make_handler(route: RouteFunction) -> LambdaHandler:
    @metrics.log_metrics
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        response = _handle(route, event, context)
        record_request_metrics(
            route, int(response.get("statusCode", 0)), time.perf_counter() - started
        )
        _command_outcome(route, event, response)
        return response

    handler.__name__ = handler.__qualname__ = route.attr
    return handler


def _handle(route: RouteFunction, event: dict[str, Any], context: Any) -> dict[str, Any]:
    route_key = str(event.get("routeKey") or "")
    if route_key not in (route.route_key, "$default"):
        logger.warning("event for another route", extra={"route_key": route_key})
        return _route_mismatch(route, route_key)
    claims = authorizer_claims(event)
    logger.append_keys(
        route=route.route_key,
        user_sub=claims.get("sub"),
        tenant_id=claims.get("custom:tenant_id"),
    )
    tracer.put_annotation(key="route", value=route.name)
    response: dict[str, Any] = get_bridge()(event, context)
    tracer.put_annotation(key="status", value=str(response.get("statusCode", "")))
    return response


HANDLERS: dict[str, LambdaHandler] = {route.attr: _make_handler(route) for route in ROUTES}

tenant_me = HANDLERS["tenant_me"]
tenant_agents = HANDLERS["tenant_agents"]
tenant_integrations = HANDLERS["tenant_integrations"]
tenant_usage = HANDLERS["tenant_usage"]
tenant_incidents = HANDLERS["tenant_incidents"]
internal_tenants = HANDLERS["internal_tenants"]
internal_tenant = HANDLERS["internal_tenant"]
internal_tenant_agents = HANDLERS["internal_tenant_agents"]
internal_usage_overview = HANDLERS["internal_usage_overview"]
internal_billing_overview = HANDLERS["internal_billing_overview"]
create_command = HANDLERS["create_command"]
list_commands = HANDLERS["list_commands"]
