"""Route matching that skips the routers a path cannot reach.

FastAPI matches a request against every router the app includes, in order, and each included
router tries each of its routes (a regular expression and FastAPI's bookkeeping per route), then
tries its routes again to handle the request. The dashboard's pages come after the thirteen API
routers, so a page request tried nearly every one of the app's 42 routes, some of them twice:
~100 us of a worker's CPU per page request under load (A/B, 2 workers, concurrency 64:
``/company`` 1 825 -> 1 727 us per request, ``/company/operations`` 941 -> 851 us).

``skip_unreachable_routers(app)`` gives each included router a first test: the first segment
of the request's path (``company`` in ``/company/tenants``) must be the first segment of one of
its routes. A router with a parameter in a first segment (``/{anything}``) keeps FastAPI's own
test, and so does every request with a ``root_path`` (served under a prefix): the answer only
ever changes from "try my routes" to "none of my routes can match", for routers where that is
certain, so every request reaches the route it reached before (``tests/test_routing.py``
checks every route of the app, and the 404 and 405 answers).

FastAPI keeps an included router as an object with the ``original_router`` it was built from
and the ``include_context`` it was included with; a route without them (a mount, the OpenAPI
document's), a router included under a prefix, and everything if a later FastAPI names them
otherwise, are left as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import Scope

Matcher = Callable[[Scope], tuple[Match, Scope]]


def first_segment(path: str) -> str:
    """``company`` for ``/company/tenants`` and ``/company``; ``""`` for ``/``."""
    end = path.find("/", 1)
    return path[1:] if end < 0 else path[1:end]


def _included(route: Any) -> Any:
    """The router ``route`` includes as it is (no prefix added when included), else None."""
    router = getattr(route, "original_router", None)
    context = getattr(route, "include_context", None)
    if router is None or context is None or getattr(context, "prefix", None) != "":
        return None
    return router


def _first_segments(router: Any) -> frozenset[str] | None:
    """The first segments of every path ``router`` serves; None when one of them is a
    parameter or the router holds something other than routes with a path."""
    segments: set[str] = set()
    for route in getattr(router, "routes", ()):
        if hasattr(route, "original_router"):  # a router included in this one
            inner = _included(route)
            nested = None if inner is None else _first_segments(inner)
            if nested is None:
                return None
            segments |= nested
            continue
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            return None
        segment = first_segment(path)
        if "{" in segment:
            return None
        segments.add(segment)
    return frozenset(segments)


def _guarded(matches: Matcher, segments: frozenset[str]) -> Matcher:
    def guarded_matches(scope: Scope) -> tuple[Match, Scope]:
        if not scope.get("root_path") and first_segment(scope["path"]) not in segments:
            return Match.NONE, {}
        return matches(scope)

    return guarded_matches


def skip_unreachable_routers(app: FastAPI) -> int:
    """Guard each router ``app`` includes (see the module docstring); how many were guarded.
    Call it once every router is included."""
    guarded = 0
    for route in app.router.routes:
        router = _included(route)
        if router is None:
            continue
        segments = _first_segments(router)
        if segments is None:
            continue
        # on the instance: the route stays the object FastAPI built (the OpenAPI document,
        # url_path_for and the 404/405 paths see it unchanged)
        setattr(route, "matches", _guarded(route.matches, segments))  # noqa: B010
        guarded += 1
    return guarded
