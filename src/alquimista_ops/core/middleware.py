"""One pure-ASGI middleware for what every response needs: request id, security headers,
body size limit and the access log line."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alquimista_ops.core.errors import error_body
from alquimista_ops.core.logging import request_id_var, tenant_id_var, user_sub_var

access_log = logging.getLogger("alquimista_ops.access")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
]
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class _BodyTooLarge(Exception):
    pass


class _RequestIds:
    """UUID-shaped request ids: a random prefix per process and a counter (profiled:
    ``uuid4()`` reads the kernel's random source on every request)."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        h = uuid.uuid4().hex
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-"
        self._counter = itertools.count(int(h[20:], 16) & 0xFFFFFFFF)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


_request_ids = _RequestIds()


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        observe: Callable[[str, str | None, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # request metrics (method, route template, status, seconds)
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and len(incoming) <= 128 else _request_ids.new()
        token = request_id_var.set(request_id)
        tenant_token = tenant_id_var.set(None)
        user_token = user_sub_var.set(None)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_holder: dict[str, Any] = {"status": 500}
        https = scope.get("scheme") == "https" or _header(scope, b"x-forwarded-proto") == "https"

        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.max_body_bytes:
            await _send_json(
                send, 413, "PAYLOAD_TOO_LARGE", "Request body is too large", request_id
            )
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(SECURITY_HEADERS)
                if https:
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            if not response_started:
                await _send_json(
                    send, 413, "PAYLOAD_TOO_LARGE", "Request body is too large", request_id
                )
            status_holder["status"] = 413
        finally:
            route = scope.get("route")
            duration = time.perf_counter() - started
            template = getattr(route, "path", None)
            if access_log.isEnabledFor(logging.INFO):
                state = scope.get("state") or {}
                extra: dict[str, Any] = {
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "route": template,
                    "status": status_holder["status"],
                    "duration_ms": round(duration * 1000, 2),
                }
                # Set by the auth dependencies on the request state: context variables set in
                # the thread pool (sync dependencies) never reach this task.
                for key in ("tenant_id", "user_sub"):
                    value = state.get(key)
                    if value:
                        extra[key] = value
                access_log.info("request", extra=extra)
            if self.observe is not None:
                self.observe(scope.get("method") or "", template, status_holder["status"], duration)
            request_id_var.reset(token)
            tenant_id_var.reset(tenant_token)
            user_sub_var.reset(user_token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_json(send: Send, status: int, code: str, message: str, request_id: str) -> None:
    body = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
