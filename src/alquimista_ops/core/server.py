"""The production ASGI server (uvicorn) and its options, in one place: ``alquimista-ops serve``
runs the application with them, and ``bench/load.py`` serves its bare baseline app with the
very same options, so the two are measured under the same server settings."""

from __future__ import annotations

from typing import Any

# httptools and uvloop come with uvicorn[standard]; naming them makes a missing one an error
# instead of a silent fallback to the slower pure-Python implementations.
SERVER_OPTIONS: dict[str, Any] = {
    "http": "httptools",
    "loop": "uvloop",
    "access_log": False,  # the application writes its own JSON access line
    "log_config": None,
    "proxy_headers": True,
    "backlog": 2048,
}


def run_server(target: str, *, factory: bool, host: str, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(target, factory=factory, host=host, port=port, workers=workers, **SERVER_OPTIONS)
