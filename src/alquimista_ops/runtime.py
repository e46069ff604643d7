"""The composition root: the long-lived objects of one process (settings, database engine and
event-loop reads, token verifier, built-in identity provider, read cache, rate limiter),
built once by the entry points (HTTP app, CLI, worker, Lambda container) and reached by routes
through ``RuntimeDep``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.engine import Engine

from alquimista_ops.auth.keys import load_or_create_key
from alquimista_ops.auth.local_idp import LocalIdentityProvider
from alquimista_ops.auth.verifier import (
    JwksCache,
    TokenVerifier,
    VerifiedTokenCache,
    http_jwks_fetcher,
)
from alquimista_ops.core.cache import Cache, build_cache
from alquimista_ops.core.db import create_db_engine, create_read_database
from alquimista_ops.core.ratelimit import RateLimiter, build_rate_limiter
from alquimista_ops.core.reads import ReadDatabase
from alquimista_ops.core.settings import Settings, get_settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    reads: ReadDatabase
    verifier: TokenVerifier
    idp: LocalIdentityProvider | None
    # the read cache and the rate limiter of this process.
    cache: Cache = field(default_factory=lambda: Cache(None, namespace="opdash:off"))
    rate_limiter: RateLimiter | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.engine.dispose()
        self.cache.close()


def build_runtime(settings: Settings | None = None, engine: Engine | None = None) -> Runtime:
    settings = settings or get_settings()
    engine = engine or create_db_engine(settings)
    idp: LocalIdentityProvider | None = None
    if settings.auth_mode == "local":
        idp = LocalIdentityProvider(
            load_or_create_key(settings.key_file),
            issuer=settings.issuer,
            client_id=settings.client_id,
            ttl_seconds=settings.token_ttl_seconds,
        )
        fetcher = idp.jwks  # same verification path, keys served in-process
    else:
        fetcher = http_jwks_fetcher(settings.jwks_url)
    verifier = TokenVerifier(
        issuer=settings.issuer,
        client_id=settings.client_id,
        jwks=JwksCache(fetcher, settings.jwks_refresh_interval_seconds),
        verified=VerifiedTokenCache(settings.token_cache_max_entries, settings.token_cache_seconds),
    )
    cache = build_cache(settings)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        reads=create_read_database(settings, engine),
        verifier=verifier,
        idp=idp,
        cache=cache,
        rate_limiter=build_rate_limiter(settings, cache.redis_client),
    )
    runtime.extras.setdefault("readiness_probes", {})["cache"] = cache.readiness
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # async: a trivial dependency must not cost a thread-pool hop.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
