"""What one Lambda container keeps between invocations: the runtime (settings, engine
pool, token verifier with its JWKS cache) and the ASGI app with its Mangum bridge.

Built on the first invocation from the environment (``ENV``, ``AURORA_SECRET_ARN``, …) and
reused by every later one; ``use_runtime`` lets tests and embedders provide their own.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

from alquimista_ops.aws.layout import SERVICE_NAME
from alquimista_ops.runtime import Runtime, build_runtime

logger = Logger(service=SERVICE_NAME)
tracer = Tracer(service=SERVICE_NAME)
# the figures of GET /metrics as CloudWatch embedded metrics (EMF, printed to stdout)
METRICS_NAMESPACE = "AlquimistaOps"
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME)

_lock = threading.Lock()
_state: dict[str, Any] = {}


def use_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (None: forget it, the next invocation builds one from the env)."""
    with _lock:
        _state.clear()
        if runtime is not None:
            _state["runtime"] = runtime


def get_runtime() -> Runtime:
    with _lock:
        runtime: Runtime | None = _state.get("runtime")
        if runtime is None:
            from alquimista_ops.core.logging import configure_logging
            from alquimista_ops.core.settings import get_settings

            settings = get_settings()
            configure_logging(settings.log_level)
            runtime = build_runtime(settings)
            _state["runtime"] = runtime
        return runtime


def get_bridge() -> Any:
    """The Mangum adapter over the same FastAPI app the HTTP server runs."""
    runtime = get_runtime()
    with _lock:
        bridge = _state.get("bridge")
        if bridge is None:
            from mangum import Mangum

            from alquimista_ops.app import create_app

            # lifespan off: Mangum would run startup/shutdown around every invocation and the
            # app's shutdown disposes the engine pool; the runtime lives as long as the container.
            bridge = Mangum(create_app(runtime=runtime), lifespan="off")
            _state["bridge"] = bridge
        return bridge
