"""``alquimista-ops smoke-test``: the deployment document's functional checks over HTTP,
against any deployment (``make run``, a self-hosted server or the API Gateway URL).

``--token`` is a tenant user's token; ``--internal-token`` an internal user's (the internal
checks are skipped without it). Contracts are those of PRODUCT.md §3.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from alquimista_ops.aws.checks import Check

TERMINAL_STATUSES = ("SUCCESS", "ERROR", "CANCELLED")


class SmokeTest:
    def __init__(
        self,
        base_url: str,
        token: str,
        internal_token: str | None = None,
        *,
        timeout: float = 15.0,
        command_timeout: float = 60.0,
        poll_interval: float = 2.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.http = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.token = token
        self.internal_token = internal_token
        self.command_timeout = command_timeout
        self.poll_interval = poll_interval
        self.checks: list[Check] = []
        self.tenant_id: str | None = None

    # -- plumbing ---------------------------------------------------------------------------
    def get(self, path: str, token: str | None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(path, params=params or None, headers=headers)

    def check(self, name: str, probe: Callable[[], str | None]) -> bool:
        """Run a probe: it returns a detail, or raises AssertionError with the reason."""
        try:
            detail = probe() or ""
            self.checks.append(Check(name, True, detail))
            return True
        except AssertionError as exc:
            self.checks.append(Check(name, False, str(exc)))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self.checks.append(Check(name, False, f"{type(exc).__name__}: {exc}"))
        return False

    def skip(self, name: str, reason: str) -> None:
        self.checks.append(Check(name, False, reason, skipped=True))

    @staticmethod
    def body(response: httpx.Response, status: int = 200) -> Any:
        if response.status_code != status:
            raise AssertionError(f"HTTP {response.status_code}: {response.text[:200]}")
        return response.json()

    # -- checks -----------------------------------------------------------------------------
    def run(self) -> list[Check]:
        self.tenant_checks()
        self.authorization_checks()
        if self.internal_token:
            self.internal_checks()
            self.command_checks()
        else:
            for name in ("internal routes", "operational commands"):
                self.skip(name, "no --internal-token given")
        return self.checks

    def tenant_checks(self) -> None:
        def me() -> str:
            data = self.body(self.get("/tenant/me", self.token))
            for key in ("id", "name", "cnpj", "plan", "status", "limits", "usage"):
                assert key in data, f"no {key!r} in the answer"
            self.tenant_id = str(data["id"])
            return f"{data['name']} ({data['plan']}, {data['status']})"

        def agents() -> str:
            data = self.body(self.get("/tenant/agents", self.token, status="all"))
            assert isinstance(data.get("agents"), list), "no agents list"
            return f"{len(data['agents'])} agents"

        def integrations() -> str:
            response = self.get("/tenant/integrations", self.token)
            data = self.body(response)
            assert isinstance(data.get("integrations"), list), "no integrations list"
            assert "credentials" not in response.text, "credentials in the answer"
            return f"{len(data['integrations'])} integrations"

        def usage() -> str:
            data = self.body(self.get("/tenant/usage", self.token, period="7d"))
            assert "summary" in data and isinstance(data.get("daily_data"), list), "bad shape"
            return f"{data['summary'].get('total_requests')} requests in 7 days"

        def incidents() -> str:
            data = self.body(self.get("/tenant/incidents", self.token, status="all"))
            assert isinstance(data.get("incidents"), list), "no incidents list"
            assert isinstance(data.get("total"), int), "no total"
            return f"{data['total']} incidents"

        self.check("GET /tenant/me returns the tenant's data", me)
        self.check("GET /tenant/agents returns the agent list", agents)
        self.check(
            "GET /tenant/integrations returns integrations without credentials", integrations
        )
        self.check("GET /tenant/usage returns a 7-day summary", usage)
        self.check("GET /tenant/incidents returns incidents and a total", incidents)

        def cached() -> str:
            self.get("/tenant/me", self.token)
            response = self.get("/tenant/me", self.token)
            assert response.status_code == 200, f"HTTP {response.status_code}"
            cache = response.headers.get("x-cache")
            assert cache == "HIT", f"X-Cache is {cache!r} on a repeated read"
            return "X-Cache: HIT"

        self.check("cache answers a repeated /tenant/me (X-Cache: HIT)", cached)

    def authorization_checks(self) -> None:
        def no_token() -> str:
            response = self.get("/tenant/me", None)
            assert response.status_code == 401, f"HTTP {response.status_code}"
            return "401"

        def tenant_on_internal() -> str:
            response = self.get("/internal/tenants", self.token)
            assert response.status_code == 403, f"HTTP {response.status_code}"
            return "403"

        self.check("a request without a token is refused (401)", no_token)
        self.check("GET /internal/tenants refuses a tenant user (403)", tenant_on_internal)

    def internal_checks(self) -> None:
        token = self.internal_token

        def tenants() -> str:
            data = self.body(self.get("/internal/tenants", token, status="all", limit=10))
            assert isinstance(data.get("tenants"), list), "no tenants list"
            assert isinstance(data.get("total"), int), "no total"
            assert data["total"] >= len(data["tenants"]), "total smaller than the page"
            if self.tenant_id is None and data["tenants"]:
                self.tenant_id = str(data["tenants"][0]["id"])
            return f"{data['total']} tenants"

        def detail() -> str:
            assert self.tenant_id, "no tenant id known (GET /tenant/me failed)"
            data = self.body(self.get(f"/internal/tenants/{self.tenant_id}", token))
            assert str(data["tenant"]["id"]) == self.tenant_id, "another tenant answered"
            return str(data["tenant"].get("name"))

        def tenant_agents() -> str:
            assert self.tenant_id, "no tenant id known"
            data = self.body(self.get(f"/internal/tenants/{self.tenant_id}/agents", token))
            assert isinstance(data.get("agents"), list), "no agents list"
            return f"{len(data['agents'])} agents"

        def usage_overview() -> str:
            data = self.body(self.get("/internal/usage/overview", token, period="30d"))
            assert "global_stats" in data, "no global_stats"
            return f"{data['global_stats'].get('total_requests')} requests in 30 days"

        def billing() -> str:
            response = self.get("/internal/billing/overview", token, period="30d")
            if response.status_code == 403:
                return "403 (INTERNAL_SUPPORT has no billing)"
            data = self.body(response)
            assert "total_mrr" in data, "no total_mrr"
            return f"MRR {data['total_mrr']}"

        self.check("GET /internal/tenants returns the list (internal user)", tenants)
        self.check("GET /internal/tenants/{id} returns the tenant", detail)
        self.check("GET /internal/tenants/{id}/agents returns its agents", tenant_agents)
        self.check("GET /internal/usage/overview returns global figures", usage_overview)
        self.check("GET /internal/billing/overview answers (admin) or refuses (support)", billing)

    def command_checks(self) -> None:
        token = self.internal_token
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}
        payload: dict[str, Any] = {"command_type": "HEALTH_CHECK", "parameters": {}}
        if self.tenant_id:
            payload["tenant_id"] = self.tenant_id
        created: dict[str, Any] = {}

        def create() -> str:
            data = self.body(
                self.http.post("/internal/operations/commands", json=payload, headers=headers), 201
            )
            assert data.get("status") == "PENDING", f"status {data.get('status')!r}"
            created.update(data)
            return str(data["command_id"])

        def replay() -> str:
            assert created, "no command was created"
            data = self.http.post("/internal/operations/commands", json=payload, headers=headers)
            assert data.status_code in (200, 201), f"HTTP {data.status_code}"
            assert data.json()["command_id"] == created["command_id"], "a second command"
            return "same command"

        def find() -> dict[str, Any] | None:
            data = self.body(
                self.get("/internal/operations/commands", token, command_type="HEALTH_CHECK")
            )
            for command in data.get("commands", []):
                if command.get("command_id") == created.get("command_id"):
                    return dict(command)
            return None

        def listed() -> str:
            assert created, "no command was created"
            assert find() is not None, "the new command is not in the list"
            return "listed"

        def processed() -> str:
            assert created, "no command was created"
            deadline = time.monotonic() + self.command_timeout
            status = "PENDING"
            while True:
                command = find()
                status = (command or {}).get("status", "missing")
                if status in TERMINAL_STATUSES or time.monotonic() >= deadline:
                    break
                time.sleep(self.poll_interval)
            assert status == "SUCCESS", f"status {status} after {self.command_timeout:.0f} s"
            return "SUCCESS"

        self.check("POST /internal/operations/commands creates a PENDING command", create)
        self.check("a replayed Idempotency-Key returns the same command", replay)
        self.check("GET /internal/operations/commands lists the command", listed)
        self.check("the command is processed (worker or stream) to SUCCESS", processed)
