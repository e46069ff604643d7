"""FastAPI dependencies shared by every feature: runtime and the unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.engine import Connection

from alquimista_ops.core.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_db(runtime: RuntimeDep) -> Iterator[Connection]:
    """The request's unit of work: commit on success, roll back on any error."""
    with runtime.engine.begin() as conn:
        yield conn


DbDep = Annotated[Connection, Depends(get_db)]
