"""The zero-setup start (``make run``: ``alquimista-ops dev``), as a developer gets it from a
fresh clone: no ``DATABASE_URL``, so the embedded PostgreSQL server comes up under ``VAR_DIR``,
the database is migrated and seeded, the demo accounts are printed, and the server answers with
the command worker inside it. Stopping the command stops the embedded server.

Each test starts its own ``dev`` process on a free port with a fresh ``VAR_DIR`` (the Redis of
the suite, a private cache prefix). The first start is printed, not asserted (a benchmark's
matter): ``pytest -s tests/test_embedded.py`` shows it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from alquimista_ops.commands.model import TERMINAL_STATUSES
from tests.conftest import TEST_REDIS_URL, free_port

START_TIMEOUT = 60.0  # seconds: initdb, migrations and the demo data on a slow machine
STOP_TIMEOUT = 30.0
ACCOUNT = re.compile(
    r"^\s+(INTERNAL_ADMIN|INTERNAL_SUPPORT|TENANT_ADMIN|TENANT_USER)\s+(\S+)\s+(\S+)$"
)
# settings a developer's shell would not carry into ``make run`` (the suite's own among them)
_NOT_INHERITED = ("DATABASE_URL", "AURORA_SECRET_ARN", "VAR_DIR", "PROMETHEUS_MULTIPROC_DIR")


@dataclass
class Dev:
    """A running ``alquimista-ops dev``: its process, URL, data directory and output."""

    process: subprocess.Popen[str]
    base: str
    var_dir: Path
    started_in: float = 0.0
    lines: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.var_dir / "postgres"

    def accounts(self) -> dict[str, tuple[str, str]]:
        """The demo accounts printed at the start: group -> (e-mail, password)."""
        found = {}
        for line in self.lines:
            match = ACCOUNT.match(line)
            if match:
                found[match.group(1)] = (match.group(2), match.group(3))
        return found

    def output(self) -> str:
        return "\n".join(self.lines)


def _start(var_dir: Path) -> Dev:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in _NOT_INHERITED}
    env.update(
        {
            "VAR_DIR": str(var_dir),
            "REDIS_URL": TEST_REDIS_URL,
            "CACHE_PREFIX": f"opdash-dev-{uuid.uuid4().hex[:8]}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    cli = Path(sys.executable).with_name("alquimista-ops")
    started = time.monotonic()
    process = subprocess.Popen(
        [str(cli), "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dev = Dev(process, f"http://127.0.0.1:{port}", var_dir)
    # the output is read in a thread: the server keeps writing (logs) after the accounts
    threading.Thread(target=_collect, args=(process, dev.lines), daemon=True).start()
    deadline = started + START_TIMEOUT
    while True:
        if process.poll() is not None:
            time.sleep(0.2)  # the rest of the output
            raise AssertionError(f"dev exited with {process.returncode}:\n{dev.output()}")
        if time.monotonic() > deadline:
            _stop(dev, signal.SIGKILL)
            raise AssertionError(f"dev did not answer in {START_TIMEOUT} s:\n{dev.output()}")
        try:
            if httpx.get(f"{dev.base}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    dev.started_in = time.monotonic() - started
    return dev


def _collect(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))


def _stop(dev: Dev, sig: int) -> int:
    if dev.process.poll() is None:
        dev.process.send_signal(sig)
    try:
        return dev.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        dev.process.kill()
        return dev.process.wait(10)


def _accepts(data_dir: Path) -> bool:
    """Whether the embedded server of ``data_dir`` accepts connections (its Unix socket)."""
    try:
        with psycopg.connect(
            host=str(data_dir), user="postgres", dbname="postgres", connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _stopped(data_dir: Path, within: float = 5.0) -> bool:
    """Whether the embedded server is down (no ``postmaster.pid``, nothing accepting) within
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while (data_dir / "postmaster.pid").exists() or _accepts(data_dir):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _stop_leftover_server(data_dir: Path) -> None:
    """A server ``dev`` left running (a failed test): stopped here, by its pid (fast shutdown)."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
    except (OSError, ValueError, IndexError):
        return
    _stopped(data_dir, STOP_TIMEOUT)


@pytest.fixture
def fresh_var_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new ``VAR_DIR`` (a fresh clone's ``var/``), with no server left behind after the
    test."""
    var_dir = tmp_path_factory.mktemp("dev-var")
    yield var_dir
    _stop_leftover_server(var_dir / "postgres")


def _sign_in(client: httpx.Client, dev: Dev, group: str) -> dict[str, str]:
    email, password = dev.accounts()[group]
    response = client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['id_token']}"}


def test_dev_starts_from_nothing_serves_and_stops_its_database(fresh_var_dir: Path) -> None:
    dev = _start(fresh_var_dir)
    try:
        print(
            f"\nfirst start of `alquimista-ops dev` (initdb, migrations, demo data): "
            f"{dev.started_in:.1f} s"
        )
        out = dev.output()
        assert "Starting the embedded PostgreSQL server" in out
        assert "Loading demo data (first start)" in out
        assert set(dev.accounts()) == {
            "INTERNAL_ADMIN",
            "INTERNAL_SUPPORT",
            "TENANT_ADMIN",
            "TENANT_USER",
        }, out
        assert (dev.data_dir / "postmaster.pid").exists() and _accepts(dev.data_dir)

        with httpx.Client(base_url=dev.base, timeout=10) as client:
            assert client.get("/ready").status_code == 200
            tenant = _sign_in(client, dev, "TENANT_USER")
            me = client.get("/tenant/me", headers=tenant)
            assert me.status_code == 200, me.text
            tenant_id = me.json()["id"]
            assert me.json()["usage"]["requests_this_month"] >= 0
            assert client.get("/tenant/me").status_code == 401

            admin = _sign_in(client, dev, "INTERNAL_ADMIN")
            listed = client.get("/internal/tenants", params={"status": "all"}, headers=admin)
            assert listed.status_code == 200, listed.text
            assert listed.json()["total"] > 0
            detail = client.get(f"/internal/tenants/{tenant_id}", headers=admin)
            assert detail.status_code == 200, detail.text

            # the command worker runs inside the server process: a command reaches SUCCESS
            created = client.post(
                "/internal/operations/commands",
                json={"command_type": "HEALTH_CHECK", "tenant_id": tenant_id},
                headers={**admin, "Idempotency-Key": f"dev-{uuid.uuid4().hex}"},
            )
            assert created.status_code == 201, created.text
            command_id = created.json()["command_id"]
            deadline = time.monotonic() + 20
            status: Any = None
            while time.monotonic() < deadline:
                found = client.get(f"/internal/operations/commands/{command_id}", headers=admin)
                assert found.status_code == 200, found.text
                status = found.json()["status"]
                if status in TERMINAL_STATUSES:
                    break
                time.sleep(0.1)
            assert status == "SUCCESS", found.json()
    finally:
        code = _stop(dev, signal.SIGINT)  # Ctrl+C on `make run`
    assert code == 0, dev.output()
    assert _stopped(dev.data_dir), "the embedded server outlived `alquimista-ops dev`"

    # a second start finds the data: no second seed, and it stops its server again
    again = _start(fresh_var_dir)
    try:
        print(f"second start (data kept): {again.started_in:.1f} s")
        assert "Loading demo data" not in again.output()
        assert set(again.accounts()) == set(dev.accounts())
    finally:
        assert _stop(again, signal.SIGINT) == 0, again.output()
    assert _stopped(again.data_dir)


def test_dev_stopped_by_sigterm_stops_its_database(fresh_var_dir: Path) -> None:
    """``kill <pid>``, a process manager or a container runtime stop ``dev`` with SIGTERM:
    the embedded server must stop with it, as with Ctrl+C."""
    dev = _start(fresh_var_dir)
    _stop(dev, signal.SIGTERM)
    assert _stopped(dev.data_dir), "the embedded server outlived `alquimista-ops dev`"
