"""The PostgreSQL URL of the Aurora cluster, read from its Secrets Manager secret.

The secret is the JSON document RDS/Aurora writes (``host``, ``port``, ``username``,
``password``, ``dbname``, ``engine``). It is read once per process (one Lambda container) and
kept in a module-level cache: a warm invocation never calls Secrets Manager again.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from alquimista_ops.core.settings import Settings

DEFAULT_DATABASE = "alquimista_platform"

_cache: dict[str, str] = {}
_lock = threading.Lock()


class AuroraSecretError(RuntimeError):
    """The secret cannot be read or is not a database credentials document."""


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def database_url_from_secret(settings: Settings, client: Any = None) -> str:
    arn = settings.aurora_secret_arn
    if not arn:
        raise AuroraSecretError("AURORA_SECRET_ARN is not set")
    with _lock:
        cached = _cache.get(arn)
        if cached is not None:
            return cached
        if client is None:
            try:
                import boto3
            except ImportError as exc:  # pragma: no cover - depends on the installed extras
                raise AuroraSecretError(
                    "AURORA_SECRET_ARN is set but boto3 is missing: install alquimista-ops[aws]"
                ) from exc
            client = boto3.client("secretsmanager", region_name=settings.aws_region)
        try:
            response = client.get_secret_value(SecretId=arn)
        except Exception as exc:
            raise AuroraSecretError(f"cannot read the Aurora secret {arn}: {exc}") from exc
        url = url_from_secret_document(response.get("SecretString") or "")
        _cache[arn] = url
        return url


def url_from_secret_document(document: str) -> str:
    try:
        secret = json.loads(document)
    except json.JSONDecodeError as exc:
        raise AuroraSecretError("the Aurora secret is not a JSON document") from exc
    if not isinstance(secret, dict):
        raise AuroraSecretError("the Aurora secret is not a JSON object")
    engine = str(secret.get("engine") or "postgres")
    if not engine.startswith(("postgres", "aurora-postgresql")):
        raise AuroraSecretError(f"the Aurora secret is for engine {engine!r}, not PostgreSQL")
    missing = [key for key in ("host", "username", "password") if not secret.get(key)]
    if missing:
        raise AuroraSecretError(f"the Aurora secret lacks {', '.join(missing)}")
    user = quote(str(secret["username"]), safe="")
    password = quote(str(secret["password"]), safe="")
    host = str(secret["host"])
    port = int(secret.get("port") or 5432)
    database = quote(str(secret.get("dbname") or DEFAULT_DATABASE), safe="")
    return f"postgresql+psycopg://{user}:{password}@{host}:{port}/{database}"
