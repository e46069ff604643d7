from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from alquimista_ops.aws import aurora
from alquimista_ops.core.settings import Settings, resolve_database_url

SECRET = {
    "engine": "postgres",
    "host": "aurora.cluster-abc.us-east-1.rds.amazonaws.com",
    "port": 5432,
    "username": "ops_app",
    "password": "p@ss:w/rd?#%",
    "dbname": "alquimista_platform",
}


@pytest.fixture
def secret_arn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aurora.clear_cache()
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="us-east-1")
        arn = client.create_secret(
            Name="/alquimista/dev/aurora/credentials", SecretString=json.dumps(SECRET)
        )["ARN"]
        yield arn
    aurora.clear_cache()


def _settings(tmp_path: Path, arn: str) -> Settings:
    return Settings(ENV="dev", AURORA_SECRET_ARN=arn, VAR_DIR=str(tmp_path))


def test_url_built_from_secret_with_escaped_password(secret_arn: str, tmp_path: Path) -> None:
    url = resolve_database_url(_settings(tmp_path, secret_arn))
    assert url == (
        "postgresql+psycopg://ops_app:p%40ss%3Aw%2Frd%3F%23%25"
        "@aurora.cluster-abc.us-east-1.rds.amazonaws.com:5432/alquimista_platform"
    )
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    assert parsed.password == SECRET["password"]
    assert parsed.username == "ops_app"


def test_secret_read_once_per_container(secret_arn: str, tmp_path: Path) -> None:
    calls: list[str] = []
    real = boto3.client("secretsmanager", region_name="us-east-1")

    class Counting:
        def get_secret_value(self, **kwargs: Any) -> Any:
            calls.append(kwargs["SecretId"])
            return real.get_secret_value(**kwargs)

    settings = _settings(tmp_path, secret_arn)
    first = aurora.database_url_from_secret(settings, Counting())
    second = aurora.database_url_from_secret(settings, Counting())
    assert first == second
    assert calls == [secret_arn]


def test_missing_secret_is_a_clear_error(secret_arn: str, tmp_path: Path) -> None:
    missing = secret_arn.replace("credentials", "nothing")
    with pytest.raises(aurora.AuroraSecretError, match="cannot read the Aurora secret"):
        aurora.database_url_from_secret(_settings(tmp_path, missing))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("not json", "not a JSON document"),
        (json.dumps({"engine": "mysql", "host": "h", "username": "u", "password": "p"}), "mysql"),
        (json.dumps({"host": "h", "username": "u"}), "lacks password"),
    ],
)
def test_bad_secret_documents(document: str, message: str) -> None:
    with pytest.raises(aurora.AuroraSecretError, match=message):
        aurora.url_from_secret_document(document)


def test_defaults_for_port_and_database() -> None:
    url = aurora.url_from_secret_document(
        json.dumps({"host": "h", "username": "u", "password": "p"})
    )
    assert url == "postgresql+psycopg://u:p@h:5432/alquimista_platform"
