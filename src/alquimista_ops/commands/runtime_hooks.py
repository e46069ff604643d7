"""The process-wide objects commands need from the runtime: the store and the cache hooks.

WIRING POINT of the read cache: ``build_cache_hooks`` is the one place that decides
how commands reach the cache. Handlers only call ``CacheHooks.purge(tenant_id | None) -> int``
(CLEAR_CACHE, and after commit for every effect) and ``CacheHooks.ping() -> str`` (HEALTH_CHECK).
Both the app's runtime (``cache_hooks_for``; also the in-process worker of ``dev``) and the
``alquimista-ops worker`` process (``commands.cli.build_worker``) go through it. To wire the
shared cache module, either put a ready ``CacheHooks`` in ``runtime.extras[CACHE_HOOKS_KEY]``
before the app starts, or change ``build_cache_hooks`` to build one from it (an in-process
cache can only be purged from its own process: the in-process worker shares it).

With the cache off (``CACHE_ENABLED=false``) the hooks purge nothing and report
``not_configured``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from alquimista_ops.commands import store as command_store
from alquimista_ops.commands.handlers import CacheHooks
from alquimista_ops.commands.store import SqlCommandStore
from alquimista_ops.core.cache import build_cache
from alquimista_ops.core.settings import Settings
from alquimista_ops.runtime import Runtime

CACHE_HOOKS_KEY = "command_cache_hooks"
STORE_KEY = "command_store"


def store_for(runtime: Runtime) -> command_store.CommandStore:
    """The runtime's command store (built once): see ``build_store``."""
    store: command_store.CommandStore | None = runtime.extras.get(STORE_KEY)
    if store is None:
        store = runtime.extras.setdefault(STORE_KEY, build_store(runtime.settings))
    return store


# The DynamoDB store's factory, set by the AWS adapter when it is imported (``alquimista_ops.aws``)
_dynamodb_store: Callable[[Settings], command_store.CommandStore] | None = None


def keep_commands_on_dynamodb_with(
    factory: Callable[[Settings], command_store.CommandStore],
) -> None:
    global _dynamodb_store
    _dynamodb_store = factory


def build_store(settings: Settings) -> command_store.CommandStore:
    """the DynamoDB table ``COMMANDS_TABLE`` when ``settings.commands_on_dynamodb``
    (``COMMANDS_BACKEND=dynamodb``, or ``auto`` with ``COMMANDS_TABLE`` set, as on Lambda);
    otherwise the relational ``operational_commands`` table."""
    if settings.commands_on_dynamodb:
        if _dynamodb_store is None:
            raise RuntimeError(
                "COMMANDS_TABLE is served by the AWS adapter: import alquimista_ops.aws"
            )
        return _dynamodb_store(settings)
    return SqlCommandStore()


def cache_hooks_for(runtime: Runtime) -> CacheHooks:
    hooks = runtime.extras.get(CACHE_HOOKS_KEY)
    if isinstance(hooks, CacheHooks):
        return hooks
    built = build_cache_hooks(runtime.settings, runtime)
    runtime.extras[CACHE_HOOKS_KEY] = built
    return built


def build_cache_hooks(settings: Settings, runtime: Runtime | None = None) -> CacheHooks:
    """THE wiring point: commands reach the shared read cache (``core.cache``).

    ``purge(tenant)`` invalidates everything shown about that tenant, including the
    platform-wide views that list it (``Cache.invalidate_tenant``); ``purge(None)`` empties the
    environment's namespace. The API process passes its runtime (same cache object, so an
    in-process cache is purged too); a separate worker process builds its own client, which
    reaches the shared cache only when it is Redis.
    """
    cache = runtime.cache if runtime is not None else build_cache(settings)
    if not cache.enabled:
        return CacheHooks()

    def purge(tenant_id: uuid.UUID | None) -> int:
        return cache.invalidate_tenant(tenant_id) if tenant_id else cache.invalidate_all()

    return CacheHooks(purge=purge, ping=cache.readiness)
