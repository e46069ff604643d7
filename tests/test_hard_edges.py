"""Hard edges: malformed input on every staff route gets a 4xx JSON error naming the field;
unknown query parameters on mutating routes; oversized bodies; security headers; rate limits
(429 + Retry-After, shared through Redis); a database that goes down answers 503 and recovers."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.core.db import create_db_engine
from alquimista_ops.core.settings import Settings, normalize_database_url
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime, build_runtime
from tests.conftest import auth, issue_token, make_settings


@pytest.fixture(scope="module")
def admin(demo_data: SeedReport, runtime: Runtime) -> dict[str, str]:
    return auth(issue_token(runtime, "INTERNAL_ADMIN"))


BAD_INPUTS = [
    ("/internal/tenants?status=deleted", "status"),
    ("/internal/tenants?plan=gold", "plan"),
    ("/internal/tenants?segment=mining", "segment"),
    ("/internal/tenants?sort_by=cnpj", "sort_by"),
    ("/internal/tenants?sort_order=sideways", "sort_order"),
    ("/internal/tenants?limit=0", "limit"),
    ("/internal/tenants?limit=201", "limit"),
    ("/internal/tenants?limit=-1", "limit"),
    ("/internal/tenants?limit=100000000000000000000000000000", "limit"),
    ("/internal/tenants?limit=abc", "limit"),
    ("/internal/tenants?offset=-1", "offset"),
    ("/internal/tenants?offset=99999999999", "offset"),
    ("/internal/tenants/12345", "tenant_id"),
    ("/internal/tenants/' OR 1=1 --/agents", "tenant_id"),
    ("/internal/usage/overview?period=1y", "period"),
    ("/internal/usage/overview?from=2026-02-10&to=2026-01-01", "to"),
    ("/internal/usage/overview?from=2024-01-01&to=2026-01-01", "to"),
    ("/internal/usage/overview?from=2026-01-01", "to"),
    ("/internal/usage/overview?from=2026-13-01&to=2026-12-01", "from"),
    ("/internal/usage/overview?period=7d&from=2026-01-01&to=2026-01-02", "period"),
    ("/internal/billing/overview?period=365d", "period"),
    ("/internal/billing/overview?from=2026-05-01&to=2026-04-01", "to"),
    ("/tenant/me?tenant_id=not-a-uuid", "tenant_id"),
    ("/tenant/incidents?limit=500", "limit"),
    ("/tenant/usage?agent_id=xyz", "agent_id"),
]


def _fields(body: dict[str, Any]) -> set[str]:
    details = body.get("details")
    if isinstance(details, dict):
        return {details.get("field", "")}
    if isinstance(details, list):
        return {d.get("field", "") for d in details}
    return set()


@pytest.mark.parametrize(("url", "field"), BAD_INPUTS)
def test_bad_input_is_400_naming_the_field(
    client: TestClient, admin: dict[str, str], demo_data: SeedReport, url: str, field: str
) -> None:
    if url.startswith("/tenant/") and "tenant_id=" not in url:
        url += f"&tenant_id={demo_data.demo_tenant_id}"
    response = client.get(url, headers=admin)
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "message", "details"}
    assert field in _fields(body), body


PAYLOADS = [
    "' OR 1=1 --",
    "'; DROP TABLE tenants; --",
    "<script>alert(1)</script>",
    '" onmouseover="x',
    "a\x00b",
    "%' AND 1=1 AND '%'='",
    "x" * 101,
    "robert`; sleep(5)",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_search_payloads_are_refused(
    client: TestClient, admin: dict[str, str], payload: str
) -> None:
    response = client.get("/internal/tenants", params={"search": payload}, headers=admin)
    assert response.status_code == 400, response.text
    assert "search" in _fields(response.json())


def test_unknown_query_parameter_on_mutating_route(client: TestClient) -> None:
    response = client.post(
        "/auth/token?debug=1&admin=true", data={"username": "x@y.z", "password": "nope"}
    )
    assert response.status_code == 400
    assert _fields(response.json()) == {"admin", "debug"}


def test_oversized_body_is_413_json(client: TestClient, settings: Settings) -> None:
    big = b"x" * (settings.max_body_bytes + 1)
    response = client.post(
        "/auth/token", content=big, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "PAYLOAD_TOO_LARGE"


def test_security_headers_and_request_id(client: TestClient, admin: dict[str, str]) -> None:
    for response in (
        client.get("/internal/tenants", headers=admin),
        client.get("/internal/tenants?limit=0", headers=admin),
        client.get("/internal/tenants"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"]
        assert response.headers["x-request-id"]
    https = client.get("/health", headers={"x-forwarded-proto": "https"})
    assert "strict-transport-security" in https.headers


def test_cors_is_an_allow_list(tmp_path: Path, pg_database: str, engine: Engine) -> None:
    settings = make_settings(tmp_path, pg_database, CORS_ORIGINS="https://ops.example.com")
    app = create_app(runtime=build_runtime(settings, engine))
    with TestClient(app) as client:
        good = client.get("/health", headers={"Origin": "https://ops.example.com"})
        bad = client.get("/health", headers={"Origin": "https://evil.example.com"})
    assert good.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert "access-control-allow-origin" not in bad.headers


# -- rate limiting ------------------------------------------------------------------------------
def _limited_app(tmp_path: Path, pg_database: str, engine: Engine, **limits: str) -> Any:
    settings = make_settings(tmp_path, pg_database, RATE_LIMIT_ENABLED="true", **limits)
    return create_app(runtime=build_runtime(settings, engine)), settings


def test_rate_limit_per_user(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    app, _ = _limited_app(
        tmp_path, pg_database, engine, RATE_LIMIT_PER_USER="3", RATE_LIMIT_PER_ADDRESS="100"
    )
    rt = app.state.runtime
    first_user = auth(issue_token(rt, "INTERNAL_ADMIN", sub=uuid.uuid4()))
    second_user = auth(issue_token(rt, "INTERNAL_ADMIN", sub=uuid.uuid4()))
    with TestClient(app) as client:
        statuses = [
            client.get("/internal/tenants", headers=first_user).status_code for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = client.get("/internal/tenants", headers=first_user)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        body = limited.json()
        assert body["error"] == "RATE_LIMITED" and body["details"]["scope"] == "user"
        assert limited.headers["x-request-id"]
        assert client.get("/internal/tenants", headers=second_user).status_code == 200
        assert client.get("/health").status_code == 200


def test_rate_limit_per_address_counts_anonymous_calls(
    tmp_path: Path, pg_database: str, engine: Engine
) -> None:
    app, _ = _limited_app(tmp_path, pg_database, engine, RATE_LIMIT_PER_ADDRESS="2")
    with TestClient(app) as client:
        statuses = [client.get("/internal/tenants").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_rate_limit_is_shared_across_processes_through_redis(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    settings = make_settings(
        tmp_path, pg_database, RATE_LIMIT_ENABLED="true", RATE_LIMIT_PER_USER="3"
    )
    one = create_app(runtime=build_runtime(settings, engine))
    two = create_app(runtime=build_runtime(settings, engine))  # another "process", same Redis
    assert one.state.runtime.rate_limiter.backend_name == "redis"
    headers = auth(issue_token(one.state.runtime, "INTERNAL_SUPPORT", sub=uuid.uuid4()))
    with TestClient(one) as a, TestClient(two) as b:
        statuses = [
            a.get("/internal/tenants", headers=headers).status_code,
            b.get("/internal/tenants", headers=headers).status_code,
            a.get("/internal/tenants", headers=headers).status_code,
            b.get("/internal/tenants", headers=headers).status_code,
        ]
    assert statuses == [200, 200, 200, 429]


def test_rate_limit_in_process_without_redis(
    tmp_path: Path, pg_database: str, engine: Engine
) -> None:
    app, _ = _limited_app(tmp_path, pg_database, engine, REDIS_URL="", RATE_LIMIT_PER_ADDRESS="1")
    assert app.state.runtime.rate_limiter.backend_name == "memory"
    with TestClient(app) as client:
        assert [client.get("/internal/tenants").status_code for _ in range(2)] == [401, 429]


# -- database down --------------------------------------------------------------------------------
class TcpForwarder:
    """A TCP relay in front of PostgreSQL that the test can cut and restore. ``target``: a
    (host, port), or the path of a Unix socket (the embedded server's)."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if isinstance(self.target, str):
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(self.target)
            else:
                upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns = []


def test_database_down_is_503_and_recovers(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    parsed = urlparse(pg_database)
    socket_dir = parse_qs(parsed.query).get("host", [""])[0]
    relay = TcpForwarder(
        f"{socket_dir}/.s.PGSQL.{parsed.port or 5432}"  # the embedded server: a Unix socket
        if socket_dir.startswith("/")
        else (parsed.hostname or "127.0.0.1", parsed.port or 5432)
    )
    relay.start()
    relayed_url = normalize_database_url(
        parsed._replace(
            netloc=f"{parsed.username or 'postgres'}@127.0.0.1:{relay.port}", query=""
        ).geturl()
    )
    settings = make_settings(tmp_path, pg_database, CACHE_ENABLED="false")
    relayed_engine = create_db_engine(settings, relayed_url, connect_args={"connect_timeout": 2})
    app = create_app(runtime=build_runtime(settings, relayed_engine))
    headers = auth(issue_token(app.state.runtime, "INTERNAL_ADMIN"))
    try:
        with TestClient(app) as client:
            assert client.get("/internal/tenants", headers=headers).status_code == 200
            relay.stop()
            for url in (
                "/internal/tenants",
                "/internal/usage/overview",
                "/tenant/me?tenant_id=" + str(demo_data.demo_tenant_id),
            ):
                down = client.get(url, headers=headers)
                assert down.status_code == 503, down.text
                assert down.json()["error"] == "SERVICE_UNAVAILABLE"
                assert down.headers["retry-after"]
            assert client.get("/ready").status_code == 503
            relay.start()
            assert client.get("/internal/tenants", headers=headers).status_code == 200
            assert client.get("/ready").status_code == 200
    finally:
        relay.stop()
        relayed_engine.dispose()
