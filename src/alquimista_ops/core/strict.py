"""Strict inputs for mutating routes: unknown query parameters are refused (400 naming them).

Usage on a POST route::

    @router.post("/things", dependencies=[strict_query()])            # no query parameters
    @router.post("/things", dependencies=[strict_query("dry_run")])    # only ?dry_run=
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from alquimista_ops.core.errors import ValidationFailed


def strict_query(*allowed: str) -> Any:
    permitted = frozenset(allowed)

    def dependency(request: Request) -> None:
        unknown = sorted(set(request.query_params.keys()) - permitted)
        if unknown:
            raise ValidationFailed(
                f"Unknown query parameter: {', '.join(unknown)}",
                details=[
                    {"field": name, "location": "query", "message": "unknown parameter"}
                    for name in unknown
                ],
            )

    return Depends(dependency)
