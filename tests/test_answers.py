"""``core.answers``: read answers validated and encoded from their response model's schema as a
typed dict give the bytes ``model_validate(...).model_dump_json(by_alias=True)`` gives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.core import answers, http_cache
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import build_runtime
from tests.conftest import SEED_TODAY, auth, issue_token, make_settings


def _by_model(model: type[BaseModel], data: Mapping[str, Any]) -> bytes:
    return model.model_validate(data).model_dump_json(by_alias=True).encode()


class Day(BaseModel):
    date: date
    total: int
    rate: float
    note: str | None = None


class Window(BaseModel):
    from_: date = Field(alias="from")
    to: date
    model_config = {"populate_by_name": True}


class Report(BaseModel):
    id: uuid.UUID
    at: datetime
    period: Window
    days: list[Day]
    tags: list[str] = []
    extra: dict[str, float] | None = None


class Checked(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def shout(cls, value: str) -> str:
        return value.upper()


def test_plain_models_are_encoded_from_their_schema() -> None:
    encode, fast = answers.encoder(Report)
    assert fast
    data: dict[str, Any] = {
        "id": uuid.UUID(int=7),
        "at": datetime(2026, 11, 29, 13, 5, 7, 120, tzinfo=UTC),
        "period": {"from": date(2026, 11, 1), "to": "2026-11-30"},
        "days": [
            {"date": date(2026, 11, 1), "total": 3, "rate": 1},  # an int where a float goes
            {"date": "2026-11-02", "total": "4", "rate": 0.1 + 0.2, "note": "</script>&é"},
        ],
        "extra": {"a": 1.5},
        "ignored": "not a field",
    }
    assert encode(data) == _by_model(Report, data)
    by_name = {**data, "period": {"from_": date(2026, 11, 1), "to": date(2026, 11, 30)}}
    assert encode(by_name) == _by_model(Report, by_name)
    for bad in (
        {**data, "days": [{"date": "nope", "total": 1, "rate": 1}]},
        {**data, "id": "not a uuid"},
        {key: value for key, value in data.items() if key != "period"},
    ):
        with pytest.raises(ValidationError):
            _by_model(Report, bad)
        with pytest.raises(ValidationError):
            encode(bad)


def test_models_with_validators_keep_the_models_path() -> None:
    encode, fast = answers.encoder(Checked)
    assert not fast
    assert encode({"name": "a"}) == b'{"name":"A"}'
    assert answers.encoder(Report, True)[1] is False  # exclude_unset: only a model knows


@pytest.fixture(scope="module")
def client(var_dir: Path, pg_database: str, engine: Engine) -> Iterator[TestClient]:
    settings = make_settings(var_dir, pg_database, CACHE_ENABLED="false")
    with TestClient(create_app(runtime=build_runtime(settings, engine))) as test_client:
        yield test_client


def test_every_read_route_answers_the_same_bytes(
    client: TestClient, demo_data: SeedReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = demo_data.demo_tenant_id
    assert home is not None
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    tenant = auth(issue_token(runtime, "TENANT_USER", home))
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    first = SEED_TODAY.replace(day=1).isoformat()
    routes = [
        (tenant, f"/tenant/{name}{query}")
        for name in ("me", "agents", "integrations", "incidents", "usage")
        for query in ("", "?period=90d", f"?from={first}&to={SEED_TODAY}")
    ] + [
        (admin, path)
        for path in (
            "/internal/tenants",
            "/internal/tenants?search=cl%C3%ADnica&status=all",
            f"/internal/tenants/{home}",
            f"/internal/tenants/{home}/agents",
            "/internal/usage/overview",
            "/internal/usage/overview?period=90d",
            "/internal/billing/overview?period=90d",
            "/internal/operations/commands",
        )
    ]
    used: set[str] = set()
    real_encoder = answers.encoder.__wrapped__

    def noting(model: type[BaseModel], exclude_unset: bool = False) -> Any:
        encode, fast = real_encoder(model, exclude_unset)
        assert fast is not exclude_unset, model  # exclude_unset: the model's path
        used.add(model.__name__)
        return encode, fast

    def models_path(model: type[BaseModel], exclude_unset: bool = False) -> Any:
        def encode(data: Mapping[str, Any]) -> bytes:
            answer = model.model_validate(data)
            return answer.model_dump_json(by_alias=True, exclude_unset=exclude_unset).encode()

        return encode, False

    for headers, path in routes:
        monkeypatch.setattr(http_cache, "encoder", noting)
        fast = client.get(path, headers=headers)
        monkeypatch.setattr(http_cache, "encoder", models_path)
        slow = client.get(path, headers=headers)
        assert fast.status_code == slow.status_code == 200, (path, fast.text)
        assert fast.content == slow.content, path
    assert used >= {
        "TenantMe",
        "TenantAgents",
        "Integrations",
        "Incidents",
        "TenantUsage",
        "TenantList",
        "TenantDetail",
        "InternalTenantAgents",
        "UsageOverview",
        "BillingOverview",
    }, used
