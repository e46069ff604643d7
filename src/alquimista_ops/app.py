"""The HTTP adapter: builds the FastAPI application over the shared services."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from alquimista_ops import __version__
from alquimista_ops.agents.api import router as agents_router
from alquimista_ops.auth.api import router as auth_router
from alquimista_ops.billing.api import router as billing_router
from alquimista_ops.commands.api import router as commands_router
from alquimista_ops.commands.inprocess import start_inprocess_worker, stop_inprocess_worker
from alquimista_ops.commands.runtime_hooks import store_for
from alquimista_ops.core.errors import install_error_handlers
from alquimista_ops.core.logging import configure_logging
from alquimista_ops.core.middleware import RequestContextMiddleware
from alquimista_ops.core.openapi import install_openapi
from alquimista_ops.core.ratelimit import RateLimitMiddleware
from alquimista_ops.core.response_memo import ResponseMemoMiddleware
from alquimista_ops.core.settings import Settings, get_settings
from alquimista_ops.incidents.api import router as incidents_router
from alquimista_ops.integrations.api import router as integrations_router
from alquimista_ops.observability import metrics as observability_metrics
from alquimista_ops.observability.api import router as metrics_router
from alquimista_ops.observability.health import router as health_router
from alquimista_ops.runtime import Runtime, build_runtime
from alquimista_ops.tenants.api import router as tenants_router
from alquimista_ops.tenants.internal_api import router as internal_tenants_router
from alquimista_ops.usage.api import router as usage_router
from alquimista_ops.usage.ingest_api import router as ingest_router
from alquimista_ops.usage.internal_api import router as internal_usage_router
from alquimista_ops.usage.jobs import set_usage_changed_hook

API_ROUTERS = (
    health_router,
    auth_router,
    tenants_router,
    agents_router,
    integrations_router,
    usage_router,
    incidents_router,
    ingest_router,
    commands_router,
    internal_tenants_router,
    internal_usage_router,
    billing_router,
    metrics_router,
)


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or (runtime.settings if runtime else get_settings())
    owns_runtime = runtime is None
    runtime = runtime or build_runtime(settings)
    # Rollups run in this process (in-process worker, RECOMPUTE_USAGE) invalidate its cache.
    set_usage_changed_hook(runtime.cache.invalidate_usage)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        command_worker = start_inprocess_worker(runtime)  # `alquimista-ops dev` only
        # Everything built so far (modules, routes, models) lives as long as the process: keep
        # it out of the collector's full passes (profiled: those paused every request).
        gc.collect()
        gc.freeze()
        yield
        await runtime.reads.close()  # this event loop's read connections
        stop_inprocess_worker(runtime, command_worker)
        if owns_runtime:
            runtime.close()

    app = FastAPI(
        title="AlquimistaAI Operational Dashboard",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    # Prometheus metrics of this app (GET /metrics), requests observed by the middleware
    app.state.http_metrics = http_metrics = observability_metrics.HttpMetrics()
    app.state.database_metrics = observability_metrics.DatabaseCollector(
        runtime, lambda conn: store_for(runtime).backlog(conn)
    )
    install_error_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router)
    if settings.enable_operational_dashboard:
        from alquimista_ops.web.setup import install_web

        install_web(app)
    install_openapi(app)  # error responses and bearer security in the document
    app.add_middleware(ResponseMemoMiddleware)  # inside the rate limiter
    app.add_middleware(RateLimitMiddleware)  # inside CORS and the request context
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Cache", "Retry-After"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        observe=http_metrics.observe,
    )
    return app


def create_production_app() -> FastAPI:
    """Factory used by the ASGI server (``alquimista-ops serve``), in each of its workers."""
    from alquimista_ops.core.server import configure_worker  # granian: not imported on Lambda

    configure_worker()
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
