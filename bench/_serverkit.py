"""Shared pieces of ``bench/load.py`` and ``bench/soak.py`` (not a benchmark: ``run_all.py``
skips files starting with an underscore).

- ``large_database()``: the large demo data set on PostgreSQL, either the database named by
  ``BENCH_LARGE_DATABASE_URL`` (reused as is) or a scratch database seeded with
  ``demo seed --tenants BENCH_LARGE_TENANTS (2000) --days BENCH_LARGE_DAYS (365)`` and dropped at
  the end; vacuumed and analyzed first either way, as autovacuum would have done (the test
  machines run PostgreSQL with autovacuum off: the planner kept the statistics of before an
  earlier soak's thousands of command events, and index-only scans read the heap).
- ``Server``: a server started as production starts it (``alquimista-ops serve``), or the bare
  ASGI app served by the same server with the same options; resident memory of its workers.
- ``run_wrk``: the load generator (wrk, a separate process) and its figures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import httpx
import sqlalchemy as sa

from alquimista_ops.core.settings import normalize_database_url

T = TypeVar("T")

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SERVER_URL = os.environ.get(
    "BENCH_DATABASE_URL",
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_flag(name: str, default: bool = True) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.lower() not in {"0", "false", "no", "off"}


def _admin() -> sa.Engine:
    return sa.create_engine(normalize_database_url(SERVER_URL), isolation_level="AUTOCOMMIT")


def _vacuum_analyze(url: str) -> None:
    engine = sa.create_engine(normalize_database_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    finally:
        engine.dispose()


@contextmanager
def large_database() -> Iterator[str]:
    given = os.environ.get("BENCH_LARGE_DATABASE_URL")
    if given:
        print(f"reusing the seeded database {urlparse(given).path.lstrip('/')}", flush=True)
        _vacuum_analyze(given)
        yield given
        return
    tenants = env_int("BENCH_LARGE_TENANTS", 2000)
    days = env_int("BENCH_LARGE_DAYS", 365)
    name = f"alq_bench_large_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = urlparse(SERVER_URL)._replace(path=f"/{name}").geturl()
    try:
        with tempfile.TemporaryDirectory() as var_dir:
            env = {**os.environ, "DATABASE_URL": url, "VAR_DIR": var_dir, "LOG_LEVEL": "WARNING"}
            started = time.perf_counter()
            cli = str(BIN / "alquimista-ops")
            subprocess.run([cli, "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run(
                [cli, "demo", "seed", "--tenants", str(tenants), "--days", str(days)],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            print(
                f"seeded {tenants} tenants x {days} days in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        _vacuum_analyze(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def on_seeded_database(run: Callable[[], T]) -> T:
    """``run()`` with ``DATABASE_URL`` naming a seeded PostgreSQL database: the one given, else
    (as ``make bench`` runs the in-process benches) the large data set of ``large_database``."""
    if os.environ.get("DATABASE_URL", "").startswith("postgresql"):
        return run()
    with large_database() as url:
        os.environ["DATABASE_URL"] = url
        return run()


def server_env(database_url: str, var_dir: str, **overrides: str) -> dict[str, str]:
    """The environment of a production-like server: PostgreSQL, Redis, JSON logs at WARNING
    (one access line per request would measure the terminal), a private cache prefix, and the
    rate limiter on but with limits the load generator (one user, one address) cannot reach."""
    env = {
        **os.environ,
        "ENV": "prod",
        "DATABASE_URL": database_url,
        "VAR_DIR": var_dir,
        "REDIS_URL": REDIS_URL,
        "CACHE_PREFIX": f"opdash-bench-{uuid.uuid4().hex[:8]}",
        "CACHE_ENABLED": "true",
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_PER_USER": "1000000000",
        "RATE_LIMIT_PER_ADDRESS": "1000000000",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "METRICS_TOKEN": "bench-metrics-token-0123456789",
    }
    env.update(overrides)
    return env


def app_token(app: Any, group: str, tenant_id: uuid.UUID | None = None) -> str:
    """An id token of a made-up account of ``group``, signed by ``app``'s local provider."""
    from alquimista_ops.auth.local_idp import LocalAccount

    account = LocalAccount(
        id=uuid.uuid4(),
        email=f"bench-{group.lower()}@example.com",
        full_name="Bench",
        group_name=group,
        tenant_id=tenant_id,
    )
    return str(app.state.runtime.idp.issue_tokens(account)["id_token"])


def issue_tokens(env: dict[str, str]) -> dict[str, str]:
    """Id tokens of the demo accounts, signed by the key the server uses (same VAR_DIR)."""
    from alquimista_ops.auth.service import token_for_email
    from alquimista_ops.core.settings import Settings
    from alquimista_ops.demo import seed as demo
    from alquimista_ops.runtime import build_runtime

    settings = Settings(
        DATABASE_URL=env["DATABASE_URL"], VAR_DIR=env["VAR_DIR"], CACHE_ENABLED="false"
    )  # type: ignore[call-arg]
    runtime = build_runtime(settings)
    tokens: dict[str, str] = {}
    try:
        with runtime.engine.connect() as conn:
            for group, email, _password in demo.demo_accounts(conn):
                assert runtime.idp is not None
                tokens[group] = str(token_for_email(conn, runtime.idp, email)["id_token"])
    finally:
        runtime.close()
    return tokens


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.extend(int(p) for p in text.split())
    except OSError:
        return []
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def connection_owners(port: int) -> set[int]:
    """The processes holding the server side of the established connections to ``port``
    (``ss -tnp``: which worker accepted each)."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def every_worker_accepts(port: int, workers: int, path: str) -> bool:
    """Whether each of the ``workers`` takes connections: twice as many connections opened
    and held, each answered, reach more than one worker (the kernel spreads new connections
    over the workers' listeners; the caller asks again until they do). Without ``ss``
    (iproute2), assumed."""
    if shutil.which("ss") is None:
        return True
    held: list[socket.socket] = []
    try:
        for _ in range(2 * workers):
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(conn)
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            if not conn.recv(65536):
                return False
        return len(connection_owners(port)) >= workers
    except OSError:
        return False
    finally:
        for conn in held:
            conn.close()


@dataclass
class Server:
    """A server process on 127.0.0.1:``port``: ``alquimista-ops serve`` or the bare app."""

    name: str
    port: int
    env: dict[str, str]
    workers: int = 1
    app: str | None = None  # "bare_app:app" / "bare_app:raw" (served from bench/)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(suffix=".log")[1]))

    def start(self, health_path: str = "/health") -> Server:
        if self.app is None:
            cmd = [str(BIN / "alquimista-ops"), "serve"]
        else:
            cmd = [sys.executable, str(BENCH_DIR / "_serve_bare.py"), self.app]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            try:
                up = httpx.get(self.url(health_path), timeout=1).status_code < 500
                # every worker must be up: a worker still loading the app would leave the
                # first measurement's connections all to the others
                if up and (
                    self.workers == 1 or every_worker_accepts(self.port, self.workers, health_path)
                ):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{self.name} did not start: {self.log_path.read_text()[-2000:]}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the worker children of the server's main
        process (granian starts them even for one worker)."""
        if self.proc is None:
            return []
        return [p for p in _children(self.proc.pid) if rss_mb(p) > 0 and _is_worker(p)]

    def rss(self) -> list[float]:
        return [round(rss_mb(pid), 1) for pid in self.worker_pids()]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


def _is_worker(pid: int) -> bool:
    # the server spawns its workers through multiprocessing (spawn): skip the resource
    # tracker it may also start.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" not in cmdline


# -- the load generator ---------------------------------------------------------------------------
@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    threads: int = 2,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
    timeout_s: int = 10,
) -> LoadResult:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={timeout_s}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> LoadResult:
    def grab(pattern: str, default: str | None = None) -> str:
        match = re.search(pattern, out, re.MULTILINE)
        if match is None:
            if default is None:
                raise ValueError(f"wrk output without {pattern!r}:\n{out}")
            return default
        return match.group(1)

    total = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", out, re.MULTILINE)
    if total is None:
        raise ValueError(f"unreadable wrk output:\n{out}")
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return LoadResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2) + total.group(3)) / 1000,
        rps=float(grab(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=_ms(grab(r"^\s+50%\s+(\S+)")),
        p90_ms=_ms(grab(r"^\s+90%\s+(\S+)")),
        p99_ms=_ms(grab(r"^\s+99%\s+(\S+)")),
        max_ms=_ms(grab(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)")),
        non_2xx=int(grab(r"Non-2xx or 3xx responses: (\d+)", "0")),
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
    )
