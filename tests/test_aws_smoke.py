"""``smoke-test`` against a real local server (uvicorn on a free port, the test database)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from alquimista_ops.aws.smoke import SmokeTest
from alquimista_ops.cli import app as cli_app
from alquimista_ops.demo.seed import SeedReport
from tests.conftest import free_port

EXPECTED_CHECKS = 17


def test_every_check_passes_against_the_local_server(
    live_server: str, demo_data: SeedReport, token_for: Any, runtime: Any, clean_commands: None
) -> None:
    """The deployment document's functional checks, all of them, against a real server with a
    real command worker beside it (woken by PostgreSQL's NOTIFY)."""
    from alquimista_ops.commands.runtime_hooks import cache_hooks_for, store_for
    from alquimista_ops.commands.worker import Worker, WorkerConfig

    worker = Worker(
        runtime.engine,
        config=WorkerConfig.from_settings(runtime.settings, concurrency=1),
        store=store_for(runtime),
        cache=cache_hooks_for(runtime),
    )
    worker.start()
    try:
        token = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)
        smoke = SmokeTest(live_server, token, token_for("INTERNAL_ADMIN"), command_timeout=20)
        checks = smoke.run()
        smoke.http.close()
    finally:
        worker.stop(timeout=30.0)
    failed = [c.line() for c in checks if not c.passed]
    assert failed == []
    assert len(checks) == EXPECTED_CHECKS
    assert smoke.tenant_id == str(demo_data.demo_tenant_id)


@pytest.fixture
def clean_commands(engine: Any) -> Iterator[None]:
    yield
    import sqlalchemy as sa

    from alquimista_ops.core.schema import operational_commands, operational_events

    with engine.begin() as conn:
        conn.execute(
            sa.delete(operational_events).where(operational_events.c.event_category == "command")
        )
        conn.execute(sa.delete(operational_commands))


def test_cli_fails_on_a_bad_token(live_server: str, demo_data: SeedReport, token_for: Any) -> None:
    bad = token_for("TENANT_ADMIN", demo_data.demo_tenant_id)[:-4] + "AAAA"
    result = CliRunner().invoke(cli_app, ["smoke-test", "--base-url", live_server, "--token", bad])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "FAIL  GET /tenant/me returns the tenant's data — HTTP 401" in "\n".join(lines)
    assert "PASS  a request without a token is refused (401) — 401" in lines
    assert "SKIP  internal routes — no --internal-token given" in lines
    assert lines[-1].startswith(f"smoke test ({live_server}): ")
    assert lines[-1].endswith("(2 skipped)")


def test_unreachable_server_fails_every_check(token_for: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    smoke = SmokeTest(url, "token", timeout=2)
    checks = smoke.run()
    smoke.http.close()
    ran = [c for c in checks if not c.skipped]
    assert ran and not any(c.passed for c in ran)
    assert all("ConnectError" in c.detail for c in ran)
    assert isinstance(smoke.http, httpx.Client)
