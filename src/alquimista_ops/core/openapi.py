"""OpenAPI document completion: the error responses every route may give, and the bearer
security requirement of the routes that authenticate (so contract tests know which routes
must refuse anonymous calls)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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


PROBE_PATHS = frozenset({"/health", "/ready"})


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        error_ref = {"$ref": "#/components/schemas/Error"}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if path in PROBE_PATHS:
                    codes = ["503"] if path == "/ready" else []
                else:
                    codes = ["400", "401", "404", "429", "503"]
                if method in {"post", "put", "patch"}:
                    codes += ["413"]
                if operation.get("security"):  # routes that depend on auth.deps.get_principal
                    codes += ["403"]
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
