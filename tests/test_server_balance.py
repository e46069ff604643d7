"""``core.server``'s least-connections accept: the workers' shared counts, and the listener's
turn-taking (a worker with more open connections leaves a new one to a lighter worker, but
never for longer than ``_MAX_DEFER_SECONDS``)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from alquimista_ops.core import server
from alquimista_ops.core.server import ConnectionCounts


@pytest.fixture
def counts_path(tmp_path: Path) -> str:
    path = tmp_path / "workers"
    path.write_bytes(b"\0" * server._SLOTS * server._SLOT.size)
    return str(path)


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that stays alive: stands for another worker."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _other_worker(path: str, slot: int, pid: int, open_connections: int) -> None:
    with open(path, "r+b") as file:
        file.seek(slot * server._SLOT.size)
        file.write(server._SLOT.pack(pid, open_connections))


def _claimed_slot_in_another_process(path: str) -> int:
    code = (
        "import sys; from alquimista_ops.core.server import ConnectionCounts; "
        "print(ConnectionCounts(sys.argv[1]).slot)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, path], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_fewer_elsewhere_counts_only_live_accepting_workers(
    counts_path: str, live_pid: int
) -> None:
    mine = ConnectionCounts(counts_path)
    try:
        assert mine.slot == 0
        mine.accepting()
        _other_worker(counts_path, 1, live_pid, 2)
        assert not mine.fewer_elsewhere()  # 0 here, 2 there
        mine.opened()
        mine.opened()
        assert not mine.fewer_elsewhere()  # equal: both may take the next one
        mine.opened()
        assert mine.fewer_elsewhere()  # 3 here, 2 there
        mine.closed()
        assert not mine.fewer_elsewhere()
        mine.opened()
        _other_worker(counts_path, 1, live_pid, -1)  # started, not accepting yet
        assert not mine.fewer_elsewhere()
        _other_worker(counts_path, 1, _dead_pid(), 0)  # died without releasing its slot
        assert not mine.fewer_elsewhere()
        _other_worker(counts_path, 5, live_pid, 1)  # any slot counts
        assert mine.fewer_elsewhere()
    finally:
        mine.release()


def test_slots_are_claimed_once_per_process_and_freed_on_release(counts_path: str) -> None:
    mine = ConnectionCounts(counts_path)
    assert mine.slot == 0
    mine.accepting()
    mine.opened()
    assert _claimed_slot_in_another_process(counts_path) == 1  # 0 is locked by this one
    mine.release()
    with open(counts_path, "rb") as file:
        assert server._SLOT.unpack(file.read(server._SLOT.size)) == (0, -1)
    assert _claimed_slot_in_another_process(counts_path) == 0  # free again
    # the other process exited: its lock went with it, so its slot is free as well
    assert _claimed_slot_in_another_process(counts_path) == 0


class _Hello(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(b"hello")  # type: ignore[attr-defined]
        transport.close()


def _serve_one(counts: ConnectionCounts) -> tuple[bytes, float]:
    """One client connection to a ``_BalancedListener`` on ``counts``: what it read, after
    how many seconds."""

    async def run() -> tuple[bytes, float]:
        loop = asyncio.get_running_loop()
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        listener = server._BalancedListener(loop, listening, _Hello, counts, 16)
        try:
            started = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            data = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return data, time.monotonic() - started
        finally:
            listener.close()
            listening.close()

    return uvloop.run(run())


def test_the_listener_takes_its_turn_at_once(counts_path: str, live_pid: int) -> None:
    counts = ConnectionCounts(counts_path)
    _other_worker(counts_path, 1, live_pid, 3)  # more connections than this one
    data, seconds = _serve_one(counts)
    assert data == b"hello"
    assert seconds < server._MAX_DEFER_SECONDS
    assert counts.open == 1  # counted when accepted (the test protocol never reports a loss)


def test_a_lighter_worker_that_never_accepts_delays_a_connection_only_briefly(
    counts_path: str, live_pid: int
) -> None:
    counts = ConnectionCounts(counts_path)
    counts.opened()  # one open here, none in the other worker, which never accepts
    _other_worker(counts_path, 1, live_pid, 0)
    data, seconds = _serve_one(counts)
    assert data == b"hello"
    assert server._MAX_DEFER_SECONDS <= seconds < server._MAX_DEFER_SECONDS + 0.5
