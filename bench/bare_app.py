"""The framework's ceiling for ``bench/load.py``: one FastAPI route answering a small JSON
document, no middleware, no dependencies, no I/O. Served by the same ASGI server, with the same
options and worker count, as ``alquimista-ops serve`` serves the application.

Also ``raw``: the same document from a plain ASGI callable (no framework at all), printed for
information only; and ``starlette_app``: the same document from one Starlette route, the
baseline of ``bench/ratio.py`` (served by uvicorn there).

Not a benchmark itself (``bench/run_all.py`` runs it as a script: it does nothing then).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

DOCUMENT = {"status": "ok", "service": "operational-dashboard", "version": "bench"}

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/bare")
async def bare() -> dict[str, Any]:
    return DOCUMENT


_RAW_BODY = b'{"status":"ok","service":"operational-dashboard","version":"bench"}'


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: accept and finish
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_RAW_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _RAW_BODY})


if __name__ == "__main__":
    print("bare_app.py is served by bench/load.py (nothing to measure on its own)")


async def _starlette_bare(_request: Any) -> JSONResponse:
    return JSONResponse(DOCUMENT)


starlette_app = Starlette(routes=[Route("/bare", _starlette_bare)])
