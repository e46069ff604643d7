"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from alquimista_ops import __version__
from alquimista_ops.runtime import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness")
def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.get("/ready", summary="Readiness: database and cache reachable")
def ready(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        with runtime.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        healthy = False
        checks["database"] = f"unavailable: {type(exc).__name__}"
    for name, probe in runtime.extras.get("readiness_probes", {}).items():
        try:
            checks[name] = probe()
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}"
    body = {"status": "ready" if healthy else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
