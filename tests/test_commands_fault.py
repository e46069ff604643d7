"""Fault test: a real worker process is SIGKILLed mid-flight; a second one finishes the work.
Every command reaches a terminal state, none is lost, none is applied twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alquimista_ops.auth.principal import Principal
from alquimista_ops.commands.service import CommandPolicy, actor_of, create_command
from alquimista_ops.commands.store import SqlCommandStore
from alquimista_ops.core.schema import operational_commands as oc
from alquimista_ops.core.schema import operational_events as ev
from alquimista_ops.core.settings import Settings
from tests.commands_support import make_tenant

ROOT = Path(__file__).resolve().parent.parent
TOTAL = 300


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "VAR_DIR": str(settings.var_dir),
        "ENV": "test",
        "CACHE_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "COMMAND_LEASE_SECONDS": "2",
        "COMMAND_POLL_INTERVAL_SECONDS": "0.5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.commands_support", "worker", "0.02"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def counts(engine: Engine) -> Counter[str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(oc.c.status, sa.func.count()).group_by(oc.c.status))
        return Counter({status: int(n) for status, n in rows})


def wait_for(engine: Engine, done: Any, timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    state = counts(engine)
    while time.monotonic() < deadline and not done(state):
        time.sleep(0.05)
        state = counts(engine)
    return state


def test_sigkill_mid_flight_loses_nothing_and_applies_once(
    clean_db: Engine, settings: Settings, tmp_path: Path
) -> None:
    tenants = [make_tenant(clean_db, f"Empresa {i}") for i in range(3)]
    admin = Principal(str(uuid.uuid4()), "admin@alquimista.ai", ("INTERNAL_ADMIN",), None, "id")
    store = SqlCommandStore()
    with clean_db.begin() as conn:
        for i in range(TOTAL):
            tenant = tenants[i % 3]
            create_command(
                conn,
                store,
                admin,
                actor_of(admin),
                "RESTART_AGENT",
                tenant.id,
                {"agent_id": str(tenant.agent_id)},
                None,
                CommandPolicy(),
            )
    log = tmp_path / "workers.log"
    first = start_worker(settings, log)
    try:
        state = wait_for(clean_db, lambda s: s["SUCCESS"] >= 60, 60)
        assert state["SUCCESS"] >= 60, (state, log.read_text())
        assert state["RUNNING"] > 0, state  # killed with commands in hand
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = counts(clean_db)
        assert killed_at["SUCCESS"] < TOTAL
    finally:
        if first.poll() is None:
            first.kill()
    second = start_worker(settings, log)
    try:
        state = wait_for(clean_db, lambda s: s["SUCCESS"] + s["ERROR"] == TOTAL, 120)
        second.send_signal(signal.SIGTERM)  # graceful: finishes what it holds, then exits
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()
    assert state == Counter({"SUCCESS": TOTAL}), (state, log.read_text()[-3000:])

    with clean_db.connect() as conn:
        restarted = Counter(
            conn.execute(
                sa.select(ev.c.details["command_id"].as_string()).where(
                    ev.c.event_type == "agent.restarted"
                )
            ).scalars()
        )
        succeeded = Counter(
            conn.execute(
                sa.select(ev.c.resource_id).where(ev.c.event_type == "command.succeeded")
            ).scalars()
        )
        started = Counter(
            conn.execute(
                sa.select(ev.c.resource_id).where(ev.c.event_type == "command.started")
            ).scalars()
        )
        expired = set(
            conn.execute(
                sa.select(ev.c.resource_id).where(ev.c.event_type == "command.lease_expired")
            ).scalars()
        )
        ids = {str(i) for i in conn.execute(sa.select(oc.c.command_id)).scalars()}
        attempts = dict(
            conn.execute(sa.select(sa.cast(oc.c.command_id, sa.String), oc.c.attempts)).all()
        )
        retried = Counter(
            conn.execute(
                sa.select(ev.c.resource_id).where(ev.c.event_type == "command.retry_scheduled")
            ).scalars()
        )
        errors = list(
            conn.execute(
                sa.select(ev.c.details["error"].as_string()).where(
                    ev.c.event_type == "command.retry_scheduled"
                )
            ).scalars()
        )
    assert len(ids) == TOTAL
    # Effect applied exactly once per command; exactly one success row per command.
    assert set(restarted) == ids and set(restarted.values()) == {1}
    assert set(succeeded) == ids and set(succeeded.values()) == {1}
    # The commands the killed worker held were re-claimed after their lease expired.
    assert expired, "no lease expired: the kill did not catch commands in hand"
    for command_id in expired:
        assert started[command_id] == 2 + retried[command_id] == attempts[command_id]
    # Every other start is the first attempt or a recorded transient retry.
    for command_id in ids - expired:
        assert started[command_id] == 1 + retried[command_id], (command_id, errors[:3])
