"""Operational commands against real PostgreSQL (and Redis for the cache purge): every type's
effect and validation, the lifecycle, retries, dead letters, idempotency, leases."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.commands.handlers import HANDLERS, CommandFailed, Handler, HandlerContext
from alquimista_ops.commands.runtime_hooks import build_cache_hooks
from alquimista_ops.commands.store import SqlCommandStore
from alquimista_ops.commands.worker import Worker, WorkerConfig
from alquimista_ops.core.schema import (
    agent_requests,
    operational_commands,
    operational_events,
    tenant_agents,
    tenant_integrations,
    tenant_usage_daily,
    tenants,
)
from alquimista_ops.core.settings import Settings
from tests.commands_support import Tenant, make_tenant
from tests.conftest import auth

URL = "/internal/operations/commands"
ADMIN_SUB = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
SUPPORT_SUB = uuid.UUID("00000000-0000-4000-8000-0000000000b2")


@pytest.fixture
def world(clean_db: Engine) -> Tenant:
    return make_tenant(clean_db)


@pytest.fixture
def admin(token_for: Any) -> dict[str, str]:
    return auth(token_for("INTERNAL_ADMIN", sub=ADMIN_SUB, email="admin@alquimista.ai"))


@pytest.fixture
def support(token_for: Any) -> dict[str, str]:
    return auth(token_for("INTERNAL_SUPPORT", sub=SUPPORT_SUB, email="suporte@alquimista.ai"))


def make_worker(engine: Engine, settings: Settings | None = None, **config: Any) -> Worker:
    handlers: dict[str, Handler] | None = config.pop("handlers", None)
    values: dict[str, Any] = {"listen": False, "poll_interval": 0.05, "backoff_jitter": 0.0}
    values.update(config)
    return Worker(
        engine,
        config=WorkerConfig(**values),
        handlers=handlers,
        cache=build_cache_hooks(settings) if settings else None,
    )


def post(client: TestClient, headers: dict[str, str], body: dict[str, Any], **kw: Any) -> Any:
    return client.post(URL, json=body, headers={**headers, **kw.pop("extra", {})}, **kw)


def command(client: TestClient, headers: dict[str, str], command_id: str) -> dict[str, Any]:
    response = client.get(f"{URL}/{command_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def events(engine: Engine, command_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(operational_events)
                .where(operational_events.c.details["command_id"].as_string() == command_id)
                .order_by(operational_events.c.created_at)
            )
        )


def run(
    client: TestClient,
    headers: dict[str, str],
    engine: Engine,
    body: dict[str, Any],
    settings: Settings | None = None,
) -> Any:
    """Create the command and drain the queue (a worker wired to the cache with ``settings``)."""
    response = post(client, headers, body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "PENDING"
    make_worker(engine, settings).run_until_idle()
    return command(client, headers, response.json()["command_id"])


# -- effects of every type ---------------------------------------------------------------------
def test_restart_agent_effect_and_audit(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {
        "command_type": "RESTART_AGENT",
        "tenant_id": str(world.id),
        "parameters": {"agent_id": str(world.agent_id)},
    }
    result = run(client, admin, clean_db, body)
    assert result["status"] == "SUCCESS", result
    assert result["output"]["previous_status"] == "error"
    assert result["output"]["status"] == "active"
    assert result["tenant_name"] == "Clínica Teste"
    assert result["attempts"] == 1
    assert result["started_at"] and result["completed_at"]
    with clean_db.connect() as conn:
        row = conn.execute(
            sa.select(tenant_agents).where(tenant_agents.c.id == world.activation_id)
        ).one()
    assert row.status == "active" and row.last_error is None and row.last_restart_at is not None
    rows = events(clean_db, result["command_id"])
    kinds = [r.event_type for r in rows]
    assert kinds.count("command.created") == 1
    assert kinds.count("command.started") == 1
    assert kinds.count("command.succeeded") == 1
    assert kinds.count("agent.restarted") == 1
    for r in rows:
        assert r.user_id == str(ADMIN_SUB) and r.user_email == "admin@alquimista.ai"
        assert r.tenant_id == world.id
    assert {r.event_category for r in rows if r.event_type.startswith("command.")} == {"command"}


def test_reset_token_clears_credentials(
    client: TestClient, support: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {
        "command_type": "RESET_TOKEN",
        "tenant_id": str(world.id),
        "parameters": {"integration_id": str(world.integration_id)},
    }
    result = run(client, support, clean_db, body)
    assert result["status"] == "SUCCESS", result
    assert result["output"]["credentials_cleared"] is True
    with clean_db.connect() as conn:
        row = conn.execute(
            sa.select(tenant_integrations).where(tenant_integrations.c.id == world.integration_id)
        ).one()
    assert (row.status, row.credentials_encrypted, row.last_error) == ("pending", None, None)


def test_pause_agent_is_admin_only(
    client: TestClient,
    admin: dict[str, str],
    support: dict[str, str],
    world: Tenant,
    clean_db: Engine,
) -> None:
    body = {
        "command_type": "PAUSE_AGENT",
        "tenant_id": str(world.id),
        "parameters": {"agent_id": str(world.agent_id)},
    }
    denied = post(client, support, body)
    assert denied.status_code == 403, denied.text
    result = run(client, admin, clean_db, body)
    assert result["status"] == "SUCCESS"
    with clean_db.connect() as conn:
        row = conn.execute(
            sa.select(tenant_agents).where(tenant_agents.c.id == world.activation_id)
        ).one()
    assert row.status == "inactive" and row.deactivated_at is not None


def _within_seconds(request: Any, status: int, seconds: float = 3.0) -> Any:
    """``request()`` again until it answers ``status`` (at most ``seconds``): its last answer."""
    deadline = time.monotonic() + seconds
    response = request()
    while response.status_code != status and time.monotonic() < deadline:
        time.sleep(0.02)
        response = request()
    assert response.status_code == status, response.text
    return response


def test_suspend_and_reactivate_tenant(
    client: TestClient,
    admin: dict[str, str],
    support: dict[str, str],
    world: Tenant,
    clean_db: Engine,
    token_for: Any,
    settings: Settings,
) -> None:
    # The worker is a separate process wired to the shared cache, as in production: the
    # tenant's cached status is dropped with the rest of its keys.
    suspend = {"command_type": "SUSPEND_TENANT", "tenant_id": str(world.id)}
    missing = post(client, admin, suspend)
    assert missing.status_code == 400 and missing.json()["details"]["field"] == "parameters.reason"
    assert post(client, support, {**suspend, "parameters": {"reason": "x"}}).status_code == 403
    tenant_user = auth(token_for("TENANT_USER", world.id))
    assert client.get("/tenant/me", headers=tenant_user).status_code == 200  # status cached
    suspended = {**suspend, "parameters": {"reason": "Inadimplência"}}
    result = run(client, admin, clean_db, suspended, settings)
    assert result["status"] == "SUCCESS" and result["output"]["changed"] is True
    # another process's invalidation reaches this one's local copies through Redis's pub/sub
    # (a listener thread, ARCHITECTURE.md "Local copies"): a moment later, not at once
    blocked = _within_seconds(lambda: client.get("/tenant/me", headers=tenant_user), 403)
    assert blocked.json()["error"] == "TENANT_SUSPENDED"
    reactivate = {
        "command_type": "REACTIVATE_TENANT",
        "tenant_id": str(world.id),
        "parameters": {"reason": "Pago"},
    }
    result = run(client, admin, clean_db, reactivate, settings)
    assert result["status"] == "SUCCESS" and result["output"]["status"] == "active"
    _within_seconds(lambda: client.get("/tenant/me", headers=tenant_user), 200)
    with clean_db.connect() as conn:
        kinds = set(
            conn.execute(
                sa.select(operational_events.c.event_type).where(
                    operational_events.c.event_category == "tenant"
                )
            ).scalars()
        )
    assert {"tenant.suspended", "tenant.reactivated"} <= kinds


def test_recompute_usage_reruns_the_rollup(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    day = date(2026, 11, 20)
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(agent_requests),
            [
                {
                    "request_id": f"r{i}",
                    "tenant_id": world.id,
                    "agent_id": world.agent_id,
                    "status": "success" if i % 4 else "error",
                    "response_time_ms": 100 + i,
                    "tokens_used": 1000,
                    "created_at": datetime(2026, 11, 20, 12, tzinfo=UTC),
                    "day": day,
                }
                for i in range(8)
            ],
        )
    body = {
        "command_type": "RECOMPUTE_USAGE",
        "tenant_id": str(world.id),
        "parameters": {"from": "2026-11-19", "to": "2026-11-21"},
    }
    result = run(client, admin, clean_db, body)
    assert result["status"] == "SUCCESS", result
    assert result["output"]["rows_read"] == 8 and result["output"]["rows_written"] == 1
    with clean_db.connect() as conn:
        row = conn.execute(sa.select(tenant_usage_daily)).one()
        counters = conn.execute(
            sa.select(tenant_agents.c.total_requests, tenant_agents.c.total_errors)
        ).one()
    assert (row.total_requests, row.failed_requests, row.date) == (8, 2, day)
    assert tuple(counters) == (8, 2)
    # Re-running gives the same rows (no double counting).
    again = run(client, admin, clean_db, body)
    assert again["output"]["rows_written"] == 1
    with clean_db.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.sum(tenant_usage_daily.c.total_requests))).scalar() == 8
        )


def test_clear_cache_purges_the_tenant_keys(
    client: TestClient,
    admin: dict[str, str],
    world: Tenant,
    clean_db: Engine,
    settings: Settings,
) -> None:
    other = make_tenant(clean_db, name="Escola Outra")

    def cache_state(tenant_id: uuid.UUID) -> str:
        response = client.get(f"/tenant/me?tenant_id={tenant_id}", headers=admin)
        assert response.status_code == 200, response.text
        return str(response.headers["x-cache"])

    for tenant in (world.id, other.id):
        cache_state(tenant)
        assert cache_state(tenant) == "HIT"
    body = {"command_type": "CLEAR_CACHE", "tenant_id": str(world.id)}
    created = post(client, admin, body).json()
    make_worker(clean_db, settings).run_until_idle()
    result = command(client, admin, created["command_id"])
    assert result["status"] == "SUCCESS", result
    assert result["output"]["keys_purged"] >= 1
    assert cache_state(world.id) == "MISS"
    assert cache_state(other.id) == "HIT"  # another tenant's keys stay
    created = post(client, admin, {"command_type": "CLEAR_CACHE"}).json()
    make_worker(clean_db, settings).run_until_idle()
    result = command(client, admin, created["command_id"])
    assert result["output"]["scope"] == "all" and result["output"]["keys_purged"] >= 2
    assert cache_state(other.id) == "MISS"


def test_health_check_reports_degraded_tenant(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    result = run(client, admin, clean_db, {"command_type": "HEALTH_CHECK"})
    assert result["status"] == "SUCCESS"
    report = result["output"]
    assert report["status"] == "healthy", report
    assert report["checks"]["database"]["status"] == "ok"
    assert report["checks"]["worker"]["pending"] == 0
    result = run(
        client, admin, clean_db, {"command_type": "HEALTH_CHECK", "tenant_id": str(world.id)}
    )
    report = result["output"]
    assert report["status"] == "degraded"
    assert [i["name"] for i in report["tenant"]["integrations_in_error"]] == ["WhatsApp Business"]
    assert report["tenant"]["agents"][0]["status"] == "error"
    assert report["tenant"]["agents"][0]["healthy"] is False


def test_health_check_sees_the_backlog(world: Tenant, clean_db: Engine) -> None:
    store = SqlCommandStore()
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(operational_commands).values(
                command_id=uuid.uuid4(),
                command_type="CLEAR_CACHE",
                status="PENDING",
                parameters={},
                created_by="x",
                created_at=datetime.now(UTC) - timedelta(hours=2),
                next_attempt_at=datetime.now(UTC) - timedelta(hours=1),
                expires_at=datetime.now(UTC) + timedelta(days=90),
            )
        )
        backlog = store.backlog(conn)
        conn.execute(
            sa.insert(operational_commands).values(
                command_id=uuid.uuid4(),
                command_type="CLEAR_CACHE",
                status="PENDING",
                parameters={},
                created_by="x",
                created_at=datetime.now(UTC) - timedelta(days=2),
                next_attempt_at=datetime.now(UTC) + timedelta(hours=1),  # a retry, not due
                expires_at=datetime.now(UTC) + timedelta(days=90),
            )
        )
        later = store.backlog(conn)
    assert later.pending == 2
    assert later.oldest_pending_age_seconds == pytest.approx(
        backlog.oldest_pending_age_seconds, abs=5
    )
    assert backlog.pending == 1
    assert backlog.oldest_pending_age_seconds is not None
    assert 3500 < backlog.oldest_pending_age_seconds < 3700


# -- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"command_type": "NUKE"}, 400, "command_type"),
        ({"command_type": "RESTART_AGENT", "tenant_id": "T"}, 400, "parameters.agent_id"),
        ({"command_type": "RESTART_AGENT", "parameters": {"agent_id": "A"}}, 400, "tenant_id"),
        (
            {"command_type": "RESTART_AGENT", "tenant_id": "T", "parameters": {"agent_id": 5}},
            400,
            "parameters.agent_id",
        ),
        (
            {
                "command_type": "RESET_TOKEN",
                "tenant_id": "T",
                "parameters": {"integration_id": "x"},
            },
            400,
            "parameters.integration_id",
        ),
        (
            {"command_type": "HEALTH_CHECK", "parameters": {"verbose": True}},
            400,
            "parameters.verbose",
        ),
        ({"command_type": "HEALTH_CHECK", "priority": 1}, 400, "priority"),
        ({"command_type": "HEALTH_CHECK", "tenant_id": "nope"}, 400, "tenant_id"),
        ({"command_type": "HEALTH_CHECK", "tenant_id": "UNKNOWN"}, 404, "tenant_id"),
        (
            {"command_type": "REPROCESS_QUEUE", "parameters": {"queue_name": "sqs-x"}},
            400,
            "parameters.queue_name",
        ),
        (
            {
                "command_type": "REPROCESS_QUEUE",
                "parameters": {"queue_name": "commands", "limit": "9"},
            },
            400,
            "parameters.limit",
        ),
        (
            {
                "command_type": "RECOMPUTE_USAGE",
                "parameters": {"from": "2026-11-02", "to": "2026-11-01"},
            },
            400,
            "parameters.to",
        ),
        (
            {
                "command_type": "RECOMPUTE_USAGE",
                "parameters": {"from": "2026-13-01", "to": "2026-11-01"},
            },
            400,
            "parameters.from",
        ),
        (
            {
                "command_type": "RESTART_AGENT",
                "tenant_id": "T",
                "parameters": {"agent_id": "OTHER"},
            },
            404,
            "parameters.agent_id",
        ),
        (
            {
                "command_type": "RESET_TOKEN",
                "tenant_id": "T",
                "parameters": {"integration_id": "OTHERI"},
            },
            404,
            "parameters.integration_id",
        ),
    ],
)
def test_validation_errors_name_the_field(
    client: TestClient,
    admin: dict[str, str],
    world: Tenant,
    clean_db: Engine,
    body: dict[str, Any],
    status: int,
    field: str,
) -> None:
    other = make_tenant(clean_db, "Outra Empresa")
    names = {
        "T": str(world.id),
        "A": str(world.agent_id),
        "UNKNOWN": str(uuid.uuid4()),
        "OTHER": str(uuid.uuid4()),
        "OTHERI": str(other.integration_id),
    }

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return names.get(value, value) if isinstance(value, str) else value

    response = post(client, admin, fill(body))
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error"] in {"VALIDATION_ERROR", "NOT_FOUND"}
    assert field in payload["message"] or (
        payload["details"] and field in str(payload["details"])
    ), payload
    with clean_db.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(operational_commands)).scalar() == 0
        )


def test_unknown_query_parameter_and_auth(
    client: TestClient, admin: dict[str, str], world: Tenant, token_for: Any
) -> None:
    response = client.post(
        URL, params={"dry_run": "1"}, json={"command_type": "HEALTH_CHECK"}, headers=admin
    )
    assert response.status_code == 400 and "dry_run" in response.json()["message"]
    assert client.post(URL, json={"command_type": "HEALTH_CHECK"}).status_code == 401
    for group in ("TENANT_ADMIN", "TENANT_USER"):
        headers = auth(token_for(group, world.id))
        assert post(client, headers, {"command_type": "HEALTH_CHECK"}).status_code == 403
        assert client.get(URL, headers=headers).status_code == 403


# -- idempotency, listing, cancel ----------------------------------------------------------------
def test_idempotency_replay_and_conflict(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {"command_type": "HEALTH_CHECK", "tenant_id": str(world.id)}
    first = post(client, admin, body, extra={"Idempotency-Key": "abc-1"})
    assert first.status_code == 201
    again = post(client, admin, body, extra={"Idempotency-Key": "abc-1"})
    assert again.status_code == 200
    assert again.json()["command_id"] == first.json()["command_id"]
    conflict = post(
        client, admin, {"command_type": "HEALTH_CHECK"}, extra={"Idempotency-Key": "abc-1"}
    )
    assert conflict.status_code == 409, conflict.text
    with clean_db.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(operational_commands)).scalar() == 1
        )
        created = conn.execute(
            sa.select(sa.func.count())
            .select_from(operational_events)
            .where(operational_events.c.event_type == "command.created")
        ).scalar()
    assert created == 1


def test_list_filters_and_true_total(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    for _ in range(3):
        post(client, admin, {"command_type": "HEALTH_CHECK", "tenant_id": str(world.id)})
    post(client, admin, {"command_type": "CLEAR_CACHE"})
    page = client.get(URL, params={"limit": 2}, headers=admin).json()
    assert page["total"] == 4 and len(page["commands"]) == 2
    past_the_end = client.get(URL, params={"offset": 10}, headers=admin).json()
    assert past_the_end["total"] == 4 and past_the_end["commands"] == []
    mine = client.get(URL, params={"tenant_id": str(world.id)}, headers=admin).json()
    assert mine["total"] == 3
    assert {c["tenant_name"] for c in mine["commands"]} == {"Clínica Teste"}
    typed = client.get(URL, params={"command_type": "CLEAR_CACHE"}, headers=admin).json()
    assert typed["total"] == 1 and typed["commands"][0]["tenant_id"] is None
    assert client.get(URL, params={"status": "DONE"}, headers=admin).status_code == 400
    assert client.get(URL, params={"limit": 500}, headers=admin).status_code == 400
    pending = client.get(URL, params={"status": "PENDING"}, headers=admin).json()
    assert pending["total"] == 4
    assert client.get(f"{URL}/{uuid.uuid4()}", headers=admin).status_code == 404


def test_cancel_only_while_pending(
    client: TestClient,
    admin: dict[str, str],
    support: dict[str, str],
    world: Tenant,
    clean_db: Engine,
) -> None:
    created = post(client, admin, {"command_type": "HEALTH_CHECK"}).json()
    cancelled = client.post(f"{URL}/{created['command_id']}/cancel", headers=support)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert client.post(f"{URL}/{created['command_id']}/cancel", headers=support).status_code == 409
    assert make_worker(clean_db).run_until_idle() == 0
    kinds = [e.event_type for e in events(clean_db, created["command_id"])]
    assert kinds == ["command.created", "command.cancelled"]
    assert events(clean_db, created["command_id"])[1].user_id == str(SUPPORT_SUB)

    started = post(client, admin, {"command_type": "HEALTH_CHECK"}).json()
    with clean_db.begin() as conn:
        claimed = SqlCommandStore().claim(conn, "someone", 10, 30)
    assert [str(c.command_id) for c in claimed] == [started["command_id"]]
    refused = client.post(f"{URL}/{started['command_id']}/cancel", headers=admin)
    assert refused.status_code == 409 and refused.json()["details"]["status"] == "RUNNING"
    assert client.post(f"{URL}/{uuid.uuid4()}/cancel", headers=admin).status_code == 404

    suspend = post(
        client,
        admin,
        {
            "command_type": "SUSPEND_TENANT",
            "tenant_id": str(world.id),
            "parameters": {"reason": "x"},
        },
    ).json()
    assert client.post(f"{URL}/{suspend['command_id']}/cancel", headers=support).status_code == 403


# -- retries, dead letters, redrive --------------------------------------------------------------
def flaky(failures: int) -> Handler:
    calls = {"n": 0}

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        calls["n"] += 1
        output = HANDLERS[ctx.command.command_type](ctx)  # effect written, then rolled back
        if calls["n"] <= failures:
            raise ConnectionError(f"transient failure {calls['n']}")
        return output

    return handler


def test_retry_with_exponential_backoff(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {
        "command_type": "RESTART_AGENT",
        "tenant_id": str(world.id),
        "parameters": {"agent_id": str(world.agent_id)},
    }
    command_id = post(client, admin, body).json()["command_id"]
    worker = make_worker(
        clean_db, handlers={**HANDLERS, "RESTART_AGENT": flaky(2)}, backoff_base=0.3
    )
    delays = []
    for attempt in (1, 2):
        before = datetime.now(UTC)
        assert worker.run_until_idle() == 1
        state = command(client, admin, command_id)
        assert state["status"] == "PENDING" and state["attempts"] == attempt
        assert state["error_message"] == f"ConnectionError: transient failure {attempt}"
        delays.append((datetime.fromisoformat(state["next_attempt_at"]) - before).total_seconds())
        assert worker.run_until_idle() == 0  # not due yet
        with clean_db.connect() as conn:  # the failed attempt's effect was rolled back
            assert conn.execute(sa.select(tenant_agents.c.status)).scalar() == "error"
        time.sleep(delays[-1] + 0.05)
    assert 0.3 <= delays[0] < 0.45 and 0.6 <= delays[1] < 0.75, delays
    assert worker.run_until_idle() == 1
    state = command(client, admin, command_id)
    assert state["status"] == "SUCCESS" and state["attempts"] == 3
    kinds = [e.event_type for e in events(clean_db, command_id)]
    assert kinds.count("command.retry_scheduled") == 2
    assert kinds.count("command.started") == 3
    assert kinds.count("agent.restarted") == 1


def test_dead_letter_then_redrive(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {
        "command_type": "RESET_TOKEN",
        "tenant_id": str(world.id),
        "parameters": {"integration_id": str(world.integration_id)},
    }
    command_id = post(client, admin, body).json()["command_id"]
    with clean_db.begin() as conn:
        conn.execute(sa.update(operational_commands).values(max_attempts=2))
    worker = make_worker(
        clean_db, handlers={**HANDLERS, "RESET_TOKEN": flaky(99)}, backoff_base=0.0
    )
    worker.run_until_idle()
    state = command(client, admin, command_id)
    assert state["status"] == "ERROR" and state["attempts"] == 2 and state["dead_letter"] is True
    failed = [e for e in events(clean_db, command_id) if e.event_type == "command.failed"]
    assert len(failed) == 1 and failed[0].details["dead_letter"] is True

    redrive = {"command_type": "REPROCESS_QUEUE", "parameters": {"queue_name": "commands"}}
    redrive_id = post(client, admin, redrive).json()["command_id"]
    make_worker(clean_db).process_once()  # runs REPROCESS_QUEUE only (the other is not due)
    output = command(client, admin, redrive_id)["output"]
    assert output["redriven"] == 1 and output["command_ids"] == [command_id]
    state = command(client, admin, command_id)
    assert state["status"] == "PENDING" and state["attempts"] == 0
    make_worker(clean_db).run_until_idle()
    assert command(client, admin, command_id)["status"] == "SUCCESS"
    kinds = [e.event_type for e in events(clean_db, command_id)]
    assert kinds.count("command.redriven") == 1 and kinds[-1] == "command.succeeded"


def test_permanent_failure_is_not_retried(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {
        "command_type": "RESTART_AGENT",
        "tenant_id": str(world.id),
        "parameters": {"agent_id": str(world.agent_id)},
    }
    command_id = post(client, admin, body).json()["command_id"]
    with clean_db.begin() as conn:
        conn.execute(sa.delete(tenant_agents))
    make_worker(clean_db).run_until_idle()
    state = command(client, admin, command_id)
    assert state["status"] == "ERROR" and state["attempts"] == 1 and not state["dead_letter"]
    assert "is not activated" in state["error_message"]


# -- leases and concurrency ------------------------------------------------------------------------
def test_expired_lease_is_reclaimed_and_effect_applied_once(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    body = {
        "command_type": "RESTART_AGENT",
        "tenant_id": str(world.id),
        "parameters": {"agent_id": str(world.agent_id)},
    }
    command_id = post(client, admin, body).json()["command_id"]
    stalled = make_worker(clean_db, lease_seconds=0.2)
    with clean_db.begin() as conn:
        records = stalled.store.claim(conn, stalled.owner, 10, 0.2)  # then it "hangs"
    time.sleep(0.3)
    rescuer = make_worker(clean_db)
    with clean_db.begin() as conn:
        assert rescuer.store.release_expired(conn) == 1
    assert rescuer.run_until_idle() == 1
    stalled.run_batch(records)  # wakes up late: lease lost, must not apply the effect again
    assert stalled.stats.lost == 1
    state = command(client, admin, command_id)
    assert state["status"] == "SUCCESS" and state["attempts"] == 2
    kinds = [e.event_type for e in events(clean_db, command_id)]
    assert kinds.count("agent.restarted") == 1
    assert kinds.count("command.lease_expired") == 1
    assert kinds.count("command.succeeded") == 1


def test_two_workers_never_run_the_same_command(
    admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    runs: dict[str, list[tuple[str, float, float]]] = {}
    lock = threading.Lock()

    def recording(name: str) -> Handler:
        def handler(ctx: HandlerContext) -> dict[str, Any]:
            start = time.monotonic()
            output = HANDLERS["CLEAR_CACHE"](ctx)
            time.sleep(0.001)
            with lock:
                runs.setdefault(str(ctx.command.command_id), []).append(
                    (name, start, time.monotonic())
                )
            return output

        return handler

    total = 300
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(operational_commands),
            [
                {
                    "command_id": uuid.uuid4(),
                    "command_type": "CLEAR_CACHE",
                    "parameters": {},
                    "created_by": str(ADMIN_SUB),
                    "created_at": datetime.now(UTC),
                    "next_attempt_at": datetime.now(UTC),
                    "expires_at": datetime.now(UTC) + timedelta(days=90),
                }
                for _ in range(total)
            ],
        )
    workers = [
        make_worker(
            clean_db,
            handlers={**HANDLERS, "CLEAR_CACHE": recording(name)},
            concurrency=2,
            batch_size=7,
        )
        for name in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with clean_db.connect() as conn:
            done = conn.execute(
                sa.select(sa.func.count())
                .select_from(operational_commands)
                .where(operational_commands.c.status == "SUCCESS")
            ).scalar()
        if done == total:
            break
        time.sleep(0.1)
    for worker in workers:
        worker.stop()
    assert done == total
    assert len(runs) == total
    assert all(len(r) == 1 for r in runs.values())
    assert {r[0][0] for r in runs.values()} == {"a", "b"}  # both took part
    assert sum(w.stats.succeeded for w in workers) == total


def test_purge_after_retention(world: Tenant, clean_db: Engine) -> None:
    now = datetime.now(UTC)
    old, recent = uuid.uuid4(), uuid.uuid4()
    with clean_db.begin() as conn:
        for command_id, created in ((old, now - timedelta(days=91)), (recent, now)):
            conn.execute(
                sa.insert(operational_commands).values(
                    command_id=command_id,
                    command_type="HEALTH_CHECK",
                    status="SUCCESS",
                    parameters={},
                    created_by="x",
                    created_at=created,
                    next_attempt_at=created,
                    expires_at=created + timedelta(days=90),
                )
            )
    assert make_worker(clean_db).purge_expired() == 1
    with clean_db.connect() as conn:
        left = set(conn.execute(sa.select(operational_commands.c.command_id)).scalars())
    assert left == {recent}


def test_tenant_status_untouched_when_handler_fails(world: Tenant, clean_db: Engine) -> None:
    """A handler that fails after writing leaves nothing behind (savepoint rolled back)."""

    def broken(ctx: HandlerContext) -> dict[str, Any]:
        HANDLERS["SUSPEND_TENANT"](ctx)
        raise CommandFailed("boom")

    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(operational_commands).values(
                command_id=uuid.uuid4(),
                command_type="SUSPEND_TENANT",
                tenant_id=world.id,
                parameters={"reason": "x"},
                created_by="x",
                created_at=datetime.now(UTC),
                next_attempt_at=datetime.now(UTC),
                expires_at=datetime.now(UTC) + timedelta(days=90),
            )
        )
    make_worker(clean_db, handlers={**HANDLERS, "SUSPEND_TENANT": broken}).run_until_idle()
    with clean_db.connect() as conn:
        assert conn.execute(sa.select(tenants.c.status)).scalar() == "active"
        assert conn.execute(sa.select(operational_commands.c.status)).scalar() == "ERROR"


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    assert not [t for t in threading.enumerate() if t.name.startswith("command-worker")]


def test_suspend_then_reactivate_in_one_batch_restores_trial(
    client: TestClient, admin: dict[str, str], clean_db: Engine
) -> None:
    trial = make_tenant(clean_db, "Startup em Teste", status="trial")
    for command_type in ("SUSPEND_TENANT", "REACTIVATE_TENANT"):
        body = {
            "command_type": command_type,
            "tenant_id": str(trial.id),
            "parameters": {"reason": "teste"},
        }
        assert post(client, admin, body).status_code == 201
    worker = make_worker(clean_db)
    assert worker.process_once() == 2  # both in one batch, run in creation order
    with clean_db.connect() as conn:
        assert conn.execute(sa.select(tenants.c.status)).scalar() == "trial"
        kinds = list(
            conn.execute(
                sa.select(operational_events.c.event_type)
                .where(operational_events.c.event_category == "tenant")
                .order_by(operational_events.c.created_at)
            ).scalars()
        )
    assert kinds == ["tenant.suspended", "tenant.reactivated"]


def test_worker_wakes_on_notify(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    worker = make_worker(clean_db, listen=True, poll_interval=30.0)
    worker.start()
    try:
        time.sleep(0.5)  # the listener is up; the loop sleeps for up to 30 s
        worker.wake.clear()
        started = time.monotonic()
        created = post(client, admin, {"command_type": "HEALTH_CHECK"}).json()
        while time.monotonic() - started < 10:
            if command(client, admin, created["command_id"])["status"] == "SUCCESS":
                break
            time.sleep(0.02)
        assert command(client, admin, created["command_id"])["status"] == "SUCCESS"
        assert time.monotonic() - started < 10  # far below the 30 s poll interval
    finally:
        worker.stop()


def test_stop_finishes_the_commands_in_hand(world: Tenant, clean_db: Engine) -> None:
    def slow(ctx: HandlerContext) -> dict[str, Any]:
        time.sleep(0.1)
        return HANDLERS["CLEAR_CACHE"](ctx)

    now = datetime.now(UTC)
    with clean_db.begin() as conn:
        conn.execute(
            sa.insert(operational_commands),
            [
                {
                    "command_id": uuid.uuid4(),
                    "command_type": "CLEAR_CACHE",
                    "parameters": {},
                    "created_by": "x",
                    "created_at": now,
                    "next_attempt_at": now,
                    "expires_at": now + timedelta(days=90),
                }
                for _ in range(20)
            ],
        )
    worker = make_worker(clean_db, handlers={**HANDLERS, "CLEAR_CACHE": slow}, batch_size=5)
    worker.start()
    time.sleep(0.2)  # the first batch of 5 is in hand
    worker.stop()
    with clean_db.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(operational_commands.c.status, sa.func.count()).group_by(
                    operational_commands.c.status
                )
            ).all()
        )
    assert "RUNNING" not in statuses, statuses
    assert statuses["SUCCESS"] % 5 == 0 and statuses["SUCCESS"] >= 5
    assert statuses["SUCCESS"] + statuses.get("PENDING", 0) == 20


def test_lease_expiry_without_attempts_left_is_a_dead_letter(
    client: TestClient, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    command_id = post(client, admin, {"command_type": "HEALTH_CHECK"}).json()["command_id"]
    with clean_db.begin() as conn:
        conn.execute(sa.update(operational_commands).values(max_attempts=1))
    store = SqlCommandStore()
    with clean_db.begin() as conn:
        assert len(store.claim(conn, "dead-worker", 10, 0.05)) == 1
    time.sleep(0.1)
    with clean_db.begin() as conn:
        assert store.release_expired(conn) == 1
    state = command(client, admin, command_id)
    assert state["status"] == "ERROR" and state["dead_letter"] is True
    assert "lease expired" in state["error_message"]
    kinds = [e.event_type for e in events(clean_db, command_id)]
    assert kinds[-2:] == ["command.lease_expired", "command.failed"]


def test_reason_with_nul_is_rejected(
    client: TestClient, admin: dict[str, str], world: Tenant
) -> None:
    body = {
        "command_type": "SUSPEND_TENANT",
        "tenant_id": str(world.id),
        "parameters": {"reason": "a\x00b"},
    }
    response = post(client, admin, body)
    assert response.status_code == 400
    assert response.json()["details"]["field"] == "parameters.reason"


def test_a_command_is_committed_before_its_answer_is_sent(
    app: Any, admin: dict[str, str], world: Tenant, clean_db: Engine
) -> None:
    """A client that got 201 reads its command at once (the page's history does): the
    transaction commits before the response starts, not after it was sent."""
    rows_when_answered: list[int] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        async def watch(message: Any) -> None:
            if message["type"] == "http.response.start" and scope.get("method") == "POST":
                with clean_db.connect() as conn:
                    count = sa.select(sa.func.count()).select_from(operational_commands)
                    rows_when_answered.append(conn.execute(count).scalar_one())
            await send(message)

        await app(scope, receive, watch)

    body = {"command_type": "HEALTH_CHECK", "tenant_id": str(world.id)}
    with TestClient(probe) as client:
        response = client.post(URL, json=body, headers=admin)
    assert response.status_code == 201, response.text
    assert rows_when_answered == [1]
