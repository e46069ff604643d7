"""Ingestion: service-principal authentication, all-or-nothing batches with bad records named,
deduplication of retried batches, and the command line (JSON Lines and CSV)."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from alquimista_ops.auth.service_keys import create_service_key, revoke_service_key
from alquimista_ops.core.schema import agent_requests, tenant_usage_daily
from alquimista_ops.core.settings import Settings, get_settings
from alquimista_ops.demo.seed import agent_id_for
from tests.conftest import auth, truncate_data
from tests.usage_helpers import make_tenant

URL = "/internal/ingest/agent-requests"


@pytest.fixture
def world(clean_db: Engine) -> Iterator[dict[str, Any]]:
    from alquimista_ops.demo import catalogue

    names = [entry[0] for entry in catalogue.AGENTS]
    active = [agent_id_for(n) for n in names[:2]]
    with clean_db.begin() as conn:
        tenant = make_tenant(conn, 0, active)
        _info, key = create_service_key(conn, "platform-test")
    yield {"tenant": tenant, "agents": active, "other_agent": agent_id_for(names[2]), "key": key}


def record(world: dict[str, Any], i: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "request_id": f"req-{i:05d}",
        "tenant_id": str(world["tenant"]),
        "agent_id": str(world["agents"][i % 2]),
        "status": "error" if i % 4 == 0 else "success",
        "response_time_ms": 100 + i,
        "tokens_used": 10 * i,
        "created_at": (datetime.now(UTC) - timedelta(days=1, seconds=i)).isoformat(),
    }
    values.update(overrides)
    return values


def raw_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(agent_requests)).scalar_one()
        )


def test_batch_accepted_then_retried_without_duplicates(
    client: TestClient, clean_db: Engine, world: dict[str, Any]
) -> None:
    batch = [record(world, i) for i in range(50)]
    first = client.post(URL, json=batch, headers=auth(world["key"]))
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 50 and first.json()["duplicates"] == 0
    retry = client.post(URL, json=[*batch, record(world, 50)], headers=auth(world["key"]))
    assert retry.status_code == 200, retry.text
    assert (retry.json()["accepted"], retry.json()["duplicates"]) == (1, 50)
    assert raw_count(clean_db) == 51


def test_a_request_id_repeated_in_one_batch_is_stored_once(
    client: TestClient, clean_db: Engine, world: dict[str, Any]
) -> None:
    batch = [record(world, 1), record(world, 2), record(world, 1)]
    response = client.post(URL, json=batch, headers=auth(world["key"]))
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["duplicates"]) == (2, 1)
    assert raw_count(clean_db) == 2


def test_json_lines_and_x_api_key(
    client: TestClient, clean_db: Engine, world: dict[str, Any]
) -> None:
    body = b"\n".join(orjson.dumps(record(world, i)) for i in range(5)) + b"\n\n"
    response = client.post(
        URL,
        content=body,
        headers={"X-API-Key": world["key"], "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 5
    assert raw_count(clean_db) == 5


def test_invalid_records_are_named_and_nothing_is_written(
    client: TestClient, clean_db: Engine, world: dict[str, Any]
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    ancient = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    batch = [record(world, i) for i in range(12)]
    batch[1]["status"] = "timeout"
    batch[3]["tenant_id"] = str(uuid.uuid4())  # no such tenant
    batch[4]["agent_id"] = str(world["other_agent"])  # not activated for the tenant
    batch[5]["created_at"] = future
    batch[6]["response_time_ms"] = -1
    batch[7]["tokens_used"] = "many"
    batch[8]["created_at"] = ancient
    batch[9]["tenant_id"] = "not-a-uuid"
    del batch[10]["request_id"]
    batch[11] = "not an object"  # type: ignore[call-overload]
    response = client.post(URL, json=batch, headers=auth(world["key"]))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "INVALID_RECORDS"
    found = {(e["index"], e["field"]) for e in body["details"]["errors"]}
    assert found == {
        (1, "status"),
        (3, "tenant_id"),
        (4, "agent_id"),
        (5, "created_at"),
        (6, "response_time_ms"),
        (7, "tokens_used"),
        (8, "created_at"),
        (9, "tenant_id"),
        (10, "request_id"),
        (11, None),
    }
    assert body["details"]["invalid_records"] == 10
    assert raw_count(clean_db) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "application/json", 400, "EMPTY_BATCH"),
        (b"[", "application/json", 400, "INVALID_JSON"),
        (b'{"a": 1}\n{oops', "application/x-ndjson", 400, "INVALID_JSON"),
        (b"[]", "application/json", 400, "EMPTY_BATCH"),
    ],
)
def test_malformed_bodies(
    client: TestClient,
    world: dict[str, Any],
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    response = client.post(
        URL, content=body, headers={**auth(world["key"]), "Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == code


def test_too_many_records(client: TestClient, settings: Settings, world: dict[str, Any]) -> None:
    limit = settings.ingest_max_records
    body = b"\n".join(orjson.dumps(record(world, i)) for i in range(limit + 1))
    response = client.post(
        URL,
        content=body,
        headers={**auth(world["key"]), "Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize(
    "group", ["INTERNAL_ADMIN", "INTERNAL_SUPPORT", "TENANT_ADMIN", "TENANT_USER"]
)
def test_user_tokens_are_refused(
    client: TestClient, clean_db: Engine, world: dict[str, Any], token_for: Any, group: str
) -> None:
    tenant = world["tenant"] if group.startswith("TENANT") else None
    response = client.post(URL, json=[record(world, 1)], headers=auth(token_for(group, tenant)))
    assert response.status_code == 403
    assert response.json()["error"] == "SERVICE_PRINCIPAL_REQUIRED"
    assert raw_count(clean_db) == 0


def test_bad_missing_and_revoked_keys(
    client: TestClient, clean_db: Engine, world: dict[str, Any]
) -> None:
    batch = [record(world, 1)]
    assert client.post(URL, json=batch).status_code == 401
    assert client.post(URL, json=batch, headers=auth("garbage")).status_code == 401
    forged = world["key"][:-4] + "AAAA"
    assert client.post(URL, json=batch, headers=auth(forged)).status_code == 401
    unknown = "aosk_00000000_" + "x" * 43
    assert client.post(URL, json=batch, headers=auth(unknown)).status_code == 401
    with clean_db.begin() as conn:
        revoke_service_key(conn, "platform-test")
    response = client.post(URL, json=batch, headers=auth(world["key"]))
    assert response.status_code == 401
    assert raw_count(clean_db) == 0


def test_key_without_the_ingest_scope_is_forbidden(
    client: TestClient, clean_db: Engine, world: dict[str, Any]
) -> None:
    with clean_db.begin() as conn:
        _info, key = create_service_key(conn, "no-scope", scopes=())
    response = client.post(URL, json=[record(world, 1)], headers=auth(key))
    assert response.status_code == 403
    assert response.json()["error"] == "MISSING_SCOPE"


def test_only_the_key_hash_is_stored(clean_db: Engine, world: dict[str, Any]) -> None:
    with clean_db.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_prefix, key_hash FROM service_principals")).all()
    assert len(stored) == 1
    prefix, key_hash = stored[0]
    assert world["key"].startswith(prefix + "_")
    assert world["key"] not in key_hash and len(key_hash) == 64


# -- end to end: ingest, aggregate, read ---------------------------------------------------------
def test_ingested_batch_shows_in_tenant_usage_after_aggregate(
    client: TestClient,
    clean_db: Engine,
    world: dict[str, Any],
    token_for: Any,
    cli_env: CliRunner,
) -> None:
    from alquimista_ops.cli import app

    day = datetime.now(UTC).date() - timedelta(days=1)
    noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
    batch = [
        record(
            world,
            i,
            created_at=(noon + timedelta(seconds=i)).isoformat(),
            agent_id=str(world["agents"][0]),
        )
        for i in range(1, 11)
    ]
    assert client.post(URL, json=batch, headers=auth(world["key"])).status_code == 200
    result = cli_env.invoke(app, ["aggregate", "--date", day.isoformat()])
    assert result.exit_code == 0, result.output
    token = token_for("TENANT_ADMIN", world["tenant"])
    usage = client.get("/tenant/usage?period=7d", headers=auth(token)).json()
    summary = usage["summary"]
    errors = sum(1 for r in batch if r["status"] == "error")
    assert summary["total_requests"] == 10
    assert summary["failed_requests"] == errors
    assert summary["total_tokens"] == sum(r["tokens_used"] for r in batch)
    assert summary["avg_response_time_ms"] == round(
        sum(r["response_time_ms"] for r in batch) / 10, 2
    )
    with clean_db.connect() as conn:
        event = conn.execute(
            sa.text(
                "SELECT event_category, status, details FROM operational_events "
                "WHERE event_type = 'usage.rollup.completed'"
            )
        ).one()
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(tenant_usage_daily)).scalar_one()
            == 1
        )
    assert event.event_category == "system" and event.status == "success"
    details = event.details if isinstance(event.details, dict) else orjson.loads(event.details)
    assert details["rows_read"] == 10 and details["rows_written"] == 1


# -- command line --------------------------------------------------------------------------------
@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    assert settings.database_url
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("VAR_DIR", str(settings.var_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_cli_ingest_jsonl_and_csv(
    clean_db: Engine, world: dict[str, Any], cli_env: CliRunner, tmp_path: Path
) -> None:
    from alquimista_ops.cli import app

    jsonl = tmp_path / "requests.jsonl"
    jsonl.write_bytes(b"\n".join(orjson.dumps(record(world, i)) for i in range(25)) + b"\n")
    result = cli_env.invoke(app, ["ingest", str(jsonl), "--batch-size", "10"])
    assert result.exit_code == 0, result.output
    assert "accepted 25" in result.output
    again = cli_env.invoke(app, ["ingest", str(jsonl)])
    assert again.exit_code == 0 and "duplicates 25" in again.output

    path = tmp_path / "requests.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(record(world, 0)))
        writer.writeheader()
        for i in range(25, 40):
            writer.writerow(record(world, i))
    result = cli_env.invoke(app, ["ingest", str(path)])
    assert result.exit_code == 0, result.output
    assert "accepted 15" in result.output
    assert raw_count(clean_db) == 40


def test_cli_ingest_stops_at_an_invalid_batch(
    clean_db: Engine, world: dict[str, Any], cli_env: CliRunner, tmp_path: Path
) -> None:
    from alquimista_ops.cli import app

    records = [record(world, i) for i in range(30)]
    records[25]["status"] = "weird"
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    result = cli_env.invoke(app, ["ingest", str(path), "--batch-size", "10"])
    assert result.exit_code == 2
    assert "line 26" in result.output and "status" in result.output
    assert raw_count(clean_db) == 20  # the two valid batches before it


def test_cli_service_keys(clean_db: Engine, cli_env: CliRunner) -> None:
    from alquimista_ops.cli import app

    created = cli_env.invoke(app, ["service-keys", "create", "--name", "cli-key"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("aosk_")
    listed = cli_env.invoke(app, ["service-keys", "list"])
    assert "cli-key" in listed.output and key not in listed.output and "active" in listed.output
    assert cli_env.invoke(app, ["service-keys", "create", "--name", "cli-key"]).exit_code == 2
    assert cli_env.invoke(app, ["service-keys", "revoke", "--name", "cli-key"]).exit_code == 0
    assert "revoked" in cli_env.invoke(app, ["service-keys", "list"]).output
    truncate_data(clean_db)


def test_ingestion_route_is_in_the_openapi_document(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operation = document["paths"][URL]["post"]
    content = operation["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(content)


@pytest.mark.parametrize(
    "args",
    [
        ["aggregate", "--date", "2026-13-01"],
        ["aggregate", "--from", "2026-11-01"],
        ["aggregate", "--from", "2026-11-05", "--to", "2026-11-01"],
        ["aggregate", "--date", "2026-11-01", "--from", "2026-11-01", "--to", "2026-11-02"],
        ["aggregate", "--date", "2026-11-01", "--tenant-id", "nope"],
    ],
)
def test_cli_aggregate_refuses_bad_arguments(cli_env: CliRunner, args: list[str]) -> None:
    from alquimista_ops.cli import app

    result = cli_env.invoke(app, args)
    assert result.exit_code == 2, result.output


def test_cli_scheduler_once(clean_db: Engine, cli_env: CliRunner) -> None:
    from alquimista_ops.cli import app

    early = cli_env.invoke(app, ["scheduler", "--once", "--now", "2026-11-29T01:30:00"])
    assert early.exit_code == 0 and "not_due" in early.stdout
    ran = cli_env.invoke(app, ["scheduler", "--once", "--now", "2026-11-29T02:30:00+00:00"])
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.startswith("ran (2026-11-29)")
    again = cli_env.invoke(app, ["scheduler", "--once", "--now", "2026-11-29T03:30:00"])
    assert "already_done" in again.stdout
