"""``alquimista-ops serve`` as production runs it: worker count, and metrics over workers."""

from __future__ import annotations

import contextlib
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from alquimista_ops.core.server import default_workers
from tests.conftest import TEST_REDIS_URL, free_port

METRICS_TOKEN = "serve-test-metrics-token-0123456789"


def test_the_serve_factory_switches_the_gil_every_millisecond(
    pg_database: str, tmp_path: Path
) -> None:
    """Each worker of ``serve`` builds the app with ``create_production_app``, which sets the
    1 ms GIL switch interval granian's I/O thread needs (the default is 5 ms)."""
    env = {
        **os.environ,
        "DATABASE_URL": pg_database,
        "VAR_DIR": str(tmp_path),
        "REDIS_URL": TEST_REDIS_URL,
        "LOG_LEVEL": "WARNING",
    }
    code = (
        "import sys\n"
        "before = sys.getswitchinterval()\n"
        "from alquimista_ops.app import create_production_app\n"
        "create_production_app()\n"
        "print(before, sys.getswitchinterval())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = (float(x) for x in out.stdout.split())
    assert before == pytest.approx(0.005)
    assert after == pytest.approx(0.001)


def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert default_workers() == min(os.cpu_count() or 1, 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert default_workers() == 4  # within max_connections
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert default_workers() == 1
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert default_workers() == 3
    monkeypatch.setenv("WEB_CONCURRENCY", " 12 ")
    assert default_workers() == 12  # what is asked for, above the CPU-based cap
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("WEB_CONCURRENCY", bad)
        with pytest.raises(ValueError, match="WEB_CONCURRENCY must be a positive integer"):
            default_workers()


def test_serve_refuses_a_bad_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from alquimista_ops import cli

    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    result = CliRunner().invoke(cli.app, ["serve"])
    assert result.exit_code == 2
    assert "WEB_CONCURRENCY must be a positive integer" in result.output
    result = CliRunner().invoke(cli.app, ["serve", "--workers", "0"])
    assert result.exit_code == 2


@pytest.fixture
def two_workers(pg_database: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ENV": "test",
        "DATABASE_URL": pg_database,
        "VAR_DIR": str(tmp_path),
        "REDIS_URL": TEST_REDIS_URL,
        "CACHE_PREFIX": f"opdash-serve-{port}",
        "LOG_LEVEL": "WARNING",
        "METRICS_TOKEN": METRICS_TOKEN,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cli = Path(sys.executable).with_name("alquimista-ops")
    process = subprocess.Popen(
        [str(cli), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # Ready when both workers have answered (a new connection per request: the kernel
        # spreads them), not as soon as the first one does.
        deadline = time.monotonic() + 60
        workers: set[str] = set()
        while len(workers) < 2:
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, f"serve: {len(workers)} of 2 workers answered"
            try:
                response = httpx.get(f"{base}/health", timeout=2)
                if response.status_code == 200:
                    workers.add(response.headers["x-request-id"].rsplit("-", 1)[0])
                    continue
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(30)


def _health_requests(metrics: str) -> float:
    pattern = re.compile(
        r'^opdash_http_requests_total\{(?=[^}]*route="/health")(?=[^}]*status="200")[^}]*\}'
        r" ([0-9.e+]+)$",
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(metrics))


def test_metrics_add_up_over_the_workers(two_workers: str) -> None:
    """Every worker records into the shared directory ``serve`` sets up, so whichever worker
    answers the scrape reports the requests of both."""
    before = None
    for _ in range(3):  # the readiness polls above also count: read the starting figure
        response = httpx.get(
            f"{two_workers}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        figure = _health_requests(response.text)
        assert before is None or figure == before
        before = figure
    assert before is not None
    sent = 60
    for _ in range(sent):  # a new connection each time: the kernel spreads them over workers
        assert httpx.get(f"{two_workers}/health", timeout=10).status_code == 200
    for _ in range(5):
        response = httpx.get(
            f"{two_workers}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=10,
        )
        assert _health_requests(response.text) == before + sent


def test_headers_over_16_kib_are_refused_with_431(two_workers: str) -> None:
    """The server refuses a request whose headers exceed 16 KiB with 431, without reading the
    rest (a 64 MiB header is answered after a few hundred KB at most)."""
    host, port = two_workers.removeprefix("http://").split(":")
    fits = httpx.get(f"{two_workers}/health", headers={"X-Pad": "a" * 8_000}, timeout=10)
    assert fits.status_code == 200
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        sent, answer = 0, b""
        chunk = b"a" * 65_536
        try:
            while sent < 64 * 1024 * 1024:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        with contextlib.suppress(OSError):
            answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert sent < 8 * 1024 * 1024, sent  # stopped reading long before the end


def test_slow_headers_are_disconnected(two_workers: str) -> None:
    """A client that sends its headers a byte at a time is disconnected after the header read
    timeout (10 s), without an answer."""
    host, port = two_workers.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        closed = False
        for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 30:
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            readable, _, _ = select.select([conn], [], [], 1.0)
            if readable and conn.recv(4096) == b"":
                closed = True
                break
    elapsed = time.monotonic() - started
    assert closed, "the slow client was never disconnected"
    assert 9 <= elapsed <= 20, elapsed
