"""The command worker: claim, run, record.

One loop per thread (``concurrency``):

1. **claim** a batch of due PENDING commands in a short transaction that sets a lease
   (``FOR UPDATE SKIP LOCKED``);
2. **run** them in a second transaction that first re-confirms and locks the leased rows, runs
   each handler inside a savepoint, then marks the successes SUCCESS — effects and completion
   commit together, so an effect is applied once even if the worker dies (its transaction is
   rolled back by the database and the command, once its lease expires, runs again);
3. **record** failures in their own transaction: a retry with exponential backoff, or ERROR
   (a dead letter) once ``max_attempts`` is reached; cache keys changed by the effects are
   purged after commit.

Beside the loops: a listener thread wakes them on ``NOTIFY`` (the poll interval
stays as a fallback), and a maintenance thread renews the leases of commands in hand,
releases the expired leases of dead workers and purges commands past their 90-day expiry.
``request_stop`` (SIGTERM) lets every loop finish the commands in hand, then exits.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from alquimista_ops.commands.audit import creator, write_events
from alquimista_ops.commands.handlers import (
    HANDLERS,
    CacheHooks,
    CommandFailed,
    Handler,
    HandlerContext,
)
from alquimista_ops.commands.model import CommandRecord
from alquimista_ops.commands.store import NOTIFY_CHANNEL, CommandStore, SqlCommandStore
from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WorkerConfig:
    concurrency: int = 1
    batch_size: int = 100
    lease_seconds: float = 30.0
    poll_interval: float = 2.0
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    backoff_jitter: float = 0.2  # a retry waits between (1 - jitter) and 1 times the backoff
    purge_interval: float = 3600.0
    listen: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerConfig:
        values: dict[str, Any] = {
            "batch_size": settings.command_batch_size,
            "lease_seconds": settings.command_lease_seconds,
            "poll_interval": settings.command_poll_interval_seconds,
            "backoff_base": settings.command_backoff_base_seconds,
            "backoff_max": settings.command_backoff_max_seconds,
        }
        values.update(overrides)
        return cls(**values)

    def backoff(self, attempts: int) -> float:
        """Delay before the next attempt after ``attempts`` failed ones."""
        delay = min(self.backoff_max, self.backoff_base * (2 ** max(0, attempts - 1)))
        return delay * (1.0 - self.backoff_jitter * random.random())


@dataclass
class WorkerStats:
    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0
    batches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class HandlerError(Exception):
    def __init__(self, record: CommandRecord, error: Exception) -> None:
        super().__init__(str(error))
        self.record = record
        self.error = error


def _unwrap(exc: BaseException) -> BaseException:
    return exc.error if isinstance(exc, HandlerError) else exc


def default_owner() -> str:
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        engine: Engine,
        *,
        config: WorkerConfig | None = None,
        store: CommandStore | None = None,
        handlers: Mapping[str, Handler] | None = None,
        cache: CacheHooks | None = None,
        owner: str | None = None,
    ) -> None:
        self.engine = engine
        self.config = config or WorkerConfig()
        self.store: CommandStore = store or SqlCommandStore()
        self.handlers = dict(handlers or HANDLERS)
        self.cache = cache or CacheHooks()
        self.owner = owner or default_owner()
        self.stats = WorkerStats()
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._maintenance_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loops: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for index in range(max(1, self.config.concurrency)):
            thread = threading.Thread(
                target=self._loop, name=f"command-worker-{index}", daemon=True
            )
            self._loops.append(thread)
        self._threads = [
            *self._loops,
            threading.Thread(target=self._maintenance, name="command-maintenance", daemon=True),
        ]
        if self.config.listen:
            self._threads.append(
                threading.Thread(target=self._listen, name="command-listener", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        log.info(
            "command worker started",
            extra={"owner": self.owner, "concurrency": len(self._loops)},
        )

    def request_stop(self) -> None:
        """Stop claiming; the commands in hand are finished first (SIGTERM)."""
        self._stopping.set()
        self.wake.set()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._loops:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self._maintenance_stop.set()
        for thread in self._threads:
            if thread not in self._loops:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        log.info("command worker stopped", extra={"owner": self.owner})

    def stop(self, timeout: float | None = 30.0) -> None:
        self.request_stop()
        self.join(timeout)

    def run(self) -> None:
        """Run until ``request_stop`` (the CLI wires SIGTERM/SIGINT to it)."""
        self.start()
        while not self._stopping.wait(1.0):
            pass
        self.join()

    # -- processing ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                processed = self.process_once()
            except Exception:
                log.exception("command worker loop error")
                processed = 0
                self._stopping.wait(self.config.poll_interval)
            if processed == 0 and not self._stopping.is_set():
                self.wake.wait(self.config.poll_interval)
                self.wake.clear()

    def process_once(self) -> int:
        """Claim one batch of due commands and run it; the number claimed."""
        with self.engine.begin() as conn:
            records = self.store.claim(
                conn, self.owner, self.config.batch_size, self.config.lease_seconds
            )
        if records:
            self.run_batch(records)
        return len(records)

    def run_until_idle(self, max_batches: int = 10_000) -> int:
        """Process due commands until none is left (tests and one-shot runs)."""
        total = 0
        for _ in range(max_batches):
            claimed = self.process_once()
            if claimed == 0:
                break
            total += claimed
        return total

    def run_batch(self, records: Sequence[CommandRecord]) -> None:
        """Run a claimed batch. Fast path: every handler in one transaction with the batch's
        completion. If anything fails, that transaction is rolled back (no effect survives)
        and the batch runs again one command per transaction, isolating the failure."""
        self.stats.add(batches=1)
        # Grouped by tenant (creation order within a tenant): two batches that touch the same
        # tenants lock their rows in the same order instead of deadlocking.
        records = sorted(records, key=_lock_order)
        failures: list[tuple[CommandRecord, BaseException]] = []
        try:
            invalidations = self._run_in_transaction(records)
        except Exception as batch_exc:
            invalidations = []
            if len(records) == 1:
                failures.append((records[0], _unwrap(batch_exc)))
            else:
                log.info("batch failed; running its commands one per transaction")
                for record in records:
                    try:
                        invalidations.extend(self._run_in_transaction([record]))
                    except Exception as single_exc:
                        failures.append((record, _unwrap(single_exc)))
        self._purge_cache(invalidations)
        for record, exc in failures:
            self._record_failure(record, exc)

    def _context(
        self, conn: Connection, record: CommandRecord, events: list[dict[str, Any]]
    ) -> HandlerContext:
        store = self.store

        def redrive(_queue: str, limit: int, tenant_id: uuid.UUID | None) -> list[uuid.UUID]:
            return store.redrive(conn, limit, tenant_id, creator(record))

        return HandlerContext(
            conn=conn,
            command=record,
            now=utcnow(),
            cache=self.cache,
            backlog=lambda: store.backlog(conn),
            redrive=redrive,
            events=events,
        )

    def _run_in_transaction(self, records: Sequence[CommandRecord]) -> list[uuid.UUID | None]:
        """Run the handlers and mark them SUCCESS in one transaction; any handler exception
        rolls the whole transaction back (raised as ``HandlerError``)."""
        successes: list[tuple[CommandRecord, dict[str, Any]]] = []
        invalidations: list[uuid.UUID | None] = []
        effect_events: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            held = self.store.hold(conn, self.owner, [r.command_id for r in records])
            for record in records:
                if record.command_id not in held:
                    # The lease was lost (this worker stalled past it): another worker owns
                    # the command now, so this one must not run it.
                    log.warning("lease lost", extra={"command_id": str(record.command_id)})
                    self.stats.add(lost=1)
                    continue
                handler = self.handlers.get(record.command_type)
                context = self._context(conn, record, effect_events)
                try:
                    if handler is None:
                        raise CommandFailed(f"No handler for {record.command_type}")
                    output = handler(context)
                except Exception as exc:
                    raise HandlerError(record, exc) from exc
                successes.append((record, output))
                invalidations.extend(context.invalidations)
            write_events(conn, effect_events)
            self.store.complete(conn, self.owner, successes)
        self.stats.add(succeeded=len(successes))
        for record, _output in successes:  # one log line per command outcome
            log.info(
                "command succeeded",
                extra={
                    "command_id": str(record.command_id),
                    "command_type": record.command_type,
                    "command_tenant_id": str(record.tenant_id) if record.tenant_id else None,
                    "attempt": record.attempts,
                },
            )
        return invalidations

    def _record_failure(self, record: CommandRecord, exc: BaseException) -> None:
        permanent = isinstance(exc, CommandFailed) and exc.permanent
        message = str(exc) if isinstance(exc, CommandFailed) else f"{type(exc).__name__}: {exc}"
        retry_at = None
        if not permanent and record.attempts < record.max_attempts:
            retry_at = utcnow() + timedelta(seconds=self.config.backoff(record.attempts))
        log.warning(
            "command failed",
            extra={
                "command_id": str(record.command_id),
                "command_type": record.command_type,
                "attempt": record.attempts,
                "error": message,
                "retry_at": retry_at.isoformat() if retry_at else None,
            },
        )
        try:
            with self.engine.begin() as conn:
                status = self.store.fail(conn, self.owner, record, message, retry_at)
        except Exception:
            # The database is unreachable: the lease will expire and the command run again.
            log.exception("could not record a command failure")
            return
        if status == "PENDING":
            self.stats.add(retried=1)
        elif status == "ERROR":
            self.stats.add(failed=1)

    def _purge_cache(self, invalidations: Sequence[uuid.UUID | None]) -> None:
        if not invalidations:
            return
        targets: list[uuid.UUID | None] = [None] if None in invalidations else []
        if not targets:
            targets = list(dict.fromkeys(invalidations))
        for tenant_id in targets:
            try:
                self.cache.purge(tenant_id)
            except Exception as exc:  # a cache that is down is bypassed, never an error
                log.warning("cache invalidation failed: %s", exc)

    # -- beside the loops ------------------------------------------------------------------
    def _maintenance(self) -> None:
        renew_every = max(0.2, self.config.lease_seconds / 3)
        release_every = max(0.2, min(self.config.poll_interval, self.config.lease_seconds / 2))
        next_renew = next_release = 0.0
        next_purge = time.monotonic()  # once at start, then every purge_interval
        while not self._maintenance_stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_renew:
                    with self.engine.begin() as conn:
                        self.store.renew_leases(conn, self.owner, self.config.lease_seconds)
                    next_renew = now + renew_every
                if now >= next_release and not self._stopping.is_set():
                    with self.engine.begin() as conn:
                        released = self.store.release_expired(conn)
                    if released:
                        log.warning("released expired leases", extra={"commands": released})
                        self.wake.set()
                    next_release = now + release_every
                if now >= next_purge and not self._stopping.is_set():
                    self.purge_expired()
                    next_purge = now + self.config.purge_interval
            except Exception:
                log.exception("command maintenance error")
            self._maintenance_stop.wait(min(renew_every, release_every))

    def purge_expired(self) -> int:
        total = 0
        while True:
            with self.engine.begin() as conn:
                deleted = self.store.purge_expired(conn)
            total += deleted
            if deleted < 5000:
                break
        if total:
            log.info("purged expired commands", extra={"commands": total})
        return total

    def _listen(self) -> None:
        import psycopg

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        while not self._stopping.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True) as listener:
                    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.wake.set()  # anything created before LISTEN took effect
                    while not self._stopping.is_set():
                        for _notice in listener.notifies(timeout=0.5):
                            self.wake.set()
            except Exception as exc:
                log.warning("command listener reconnecting: %s", exc)
                self._stopping.wait(self.config.poll_interval)


def _lock_order(record: CommandRecord) -> tuple[str, datetime, str]:
    return (str(record.tenant_id or ""), record.created_at, str(record.command_id))
