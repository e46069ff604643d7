"""OpenAPI document completion: the error responses every route may give, and the bearer
security requirement of the routes that authenticate (so contract tests know which routes
must refuse anonymous calls)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "description": "Machine-readable error code"},
        "message": {"type": "string"},
        "details": {"description": "Field-level details, when any"},
    },
}
ERROR_DESCRIPTIONS = {
    "400": "Invalid input (the details name the field)",
    "401": "Missing or invalid token",
    "403": "Not allowed",
    "404": "Not found",
    "409": "Conflict",
    "413": "Request body too large",
    "429": "Rate limited (see Retry-After)",
    "503": "A dependency (database) is unavailable",
}


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    if dependant.call is call:
        return True
    return any(_uses(sub, call) for sub in dependant.dependencies)


def install_openapi(app: FastAPI) -> None:
    from alquimista_ops.auth.deps import get_principal

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        components.setdefault("securitySchemes", {})["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
        }
        error_ref = {"$ref": "#/components/schemas/Error"}
        authed = {
            (route.path, method.lower())
            for route in app.routes
            if isinstance(route, APIRoute) and _uses(route.dependant, get_principal)
            for method in (route.methods or ())
        }
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                codes = ["400", "429", "503"]
                if method in {"post", "put", "patch"}:
                    codes += ["413"]
                if (path, method) in authed:
                    operation["security"] = [{"bearerAuth": []}]
                    codes += ["401", "403", "404"]
                for code in codes:
                    responses.setdefault(
                        code,
                        {
                            "description": ERROR_DESCRIPTIONS[code],
                            "content": {"application/json": {"schema": error_ref}},
                        },
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
