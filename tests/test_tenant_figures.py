"""The figures of /tenant/me and /tenant/usage equal independent SQL over the same data.

The SQL here is written by hand (not the application's queries); averages are
request-weighted: sum(avg_response_time_ms * total_requests) / sum(total_requests).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.demo.seed import SeedReport
from tests.conftest import SEED_TODAY, auth


def q(conn: Connection, sql: str, **params: Any) -> list[Any]:
    statement = sa.text(sql)
    for name, value in params.items():
        if isinstance(value, uuid.UUID):
            statement = statement.bindparams(sa.bindparam(name, type_=sa.Uuid()))
        elif isinstance(value, date):
            statement = statement.bindparams(sa.bindparam(name, type_=sa.Date()))
    return list(conn.execute(statement, params))


def tenant_ids(engine: Engine) -> list[uuid.UUID]:
    with engine.connect() as conn:
        return [uuid.UUID(str(r[0])) for r in q(conn, "SELECT id FROM tenants ORDER BY id")]


def weighted(total: Any, weighted_sum: Any) -> float:
    return float(Decimal(weighted_sum) / Decimal(total)) if total else 0.0


def pct(part: Any, total: Any) -> float:
    return float(Decimal(part) * 100 / Decimal(total)) if total else 0.0


def check_measures(got: dict[str, Any], row: Any) -> None:
    total, ok, failed, weighted_ms, tokens, cost = (
        int(row.total or 0),
        int(row.ok or 0),
        int(row.failed or 0),
        Decimal(row.weighted_ms or 0),
        int(row.tokens or 0),
        Decimal(row.cost or 0),
    )
    assert got["total_requests"] == total
    assert got["successful_requests"] == ok
    assert got["failed_requests"] == failed
    assert got["total_tokens"] == tokens
    assert got["success_rate"] == pytest.approx(pct(ok, total), abs=0.006)
    assert got["avg_response_time_ms"] == pytest.approx(weighted(total, weighted_ms), abs=0.006)
    assert got["total_cost_usd"] == pytest.approx(float(cost), abs=1e-6)


MEASURES = """
    SUM(total_requests) AS total,
    SUM(successful_requests) AS ok,
    SUM(failed_requests) AS failed,
    SUM(avg_response_time_ms * total_requests) AS weighted_ms,
    SUM(total_tokens_used) AS tokens,
    SUM(total_cost_usd) AS cost
"""


def test_tenant_me_figures(client: TestClient, demo_data: SeedReport, engine: Engine) -> None:
    token = auth(client.app.state.runtime.idp.issue_tokens(_internal())["id_token"])  # type: ignore[attr-defined]
    month_start = datetime.now(UTC).date().replace(day=1)
    checked = 0
    with engine.connect() as conn:
        for tenant_id in tenant_ids(engine):
            response = client.get("/tenant/me", params={"tenant_id": str(tenant_id)}, headers=token)
            assert response.status_code == 200, response.text
            body = response.json()
            (tenant,) = q(
                conn,
                "SELECT t.name, t.cnpj, t.segment, t.plan, t.status, t.mrr_estimate, "
                "p.max_agents, p.max_users, p.max_requests_per_month "
                "FROM tenants t JOIN plans p ON p.name = t.plan WHERE t.id = :t",
                t=tenant_id,
            )
            (agents,) = q(
                conn,
                "SELECT COUNT(*) FROM tenant_agents WHERE tenant_id = :t AND status = 'active'",
                t=tenant_id,
            )
            (users,) = q(
                conn,
                "SELECT COUNT(*) FROM tenant_users WHERE tenant_id = :t AND status = 'active'",
                t=tenant_id,
            )
            (month,) = q(
                conn,
                "SELECT COALESCE(SUM(total_requests), 0) FROM tenant_usage_daily "
                "WHERE tenant_id = :t AND date >= :m",
                t=tenant_id,
                m=month_start,
            )
            cnpj = tenant.cnpj
            assert body["name"] == tenant.name
            assert body["cnpj"] == f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
            assert (body["segment"], body["plan"], body["status"]) == (
                tenant.segment,
                tenant.plan,
                tenant.status,
            )
            assert Decimal(str(body["mrr_estimate"])) == Decimal(tenant.mrr_estimate)
            assert body["limits"] == {
                "max_agents": tenant.max_agents,
                "max_users": tenant.max_users,
                "max_requests_per_month": tenant.max_requests_per_month,
            }
            assert body["usage"] == {
                "active_agents": agents[0],
                "active_users": users[0],
                "requests_this_month": int(month[0]),
            }
            checked += int(month[0] > 0)
    # While the seeded month is the current one, the monthly figure is not trivially zero.
    if month_start == SEED_TODAY.replace(day=1):
        assert checked > 0


def _internal() -> Any:
    from alquimista_ops.auth.local_idp import LocalAccount

    return LocalAccount(uuid.uuid4(), "staff@alquimista.ai", "Staff", "INTERNAL_ADMIN", None)


PERIODS = [
    ("custom-40d", {"from": (SEED_TODAY - timedelta(days=39)).isoformat(), "to": str(SEED_TODAY)}),
    ("custom-1d", {"from": str(SEED_TODAY - timedelta(days=1)), "to": str(SEED_TODAY)}),
    ("custom-old", {"from": "2026-10-01", "to": "2026-10-31"}),
    ("7d", {"period": "7d"}),
    ("30d", {"period": "30d"}),
    ("90d", {"period": "90d"}),
]


@pytest.mark.parametrize("by_agent", [False, True], ids=["all-agents", "one-agent"])
@pytest.mark.parametrize(("label", "params"), PERIODS, ids=[p[0] for p in PERIODS])
def test_tenant_usage_figures(
    client: TestClient,
    demo_data: SeedReport,
    engine: Engine,
    token_for: Any,
    label: str,
    params: dict[str, str],
    by_agent: bool,
) -> None:
    tenant_id = demo_data.demo_tenant_id
    assert tenant_id is not None
    with engine.connect() as conn:
        agent_rows = q(
            conn,
            "SELECT agent_id FROM tenant_agents WHERE tenant_id = :t ORDER BY agent_id",
            t=tenant_id,
        )
        agent_id = uuid.UUID(str(agent_rows[0][0])) if by_agent else None
        query = dict(params)
        if agent_id:
            query["agent_id"] = str(agent_id)
        response = client.get(
            "/tenant/usage", params=query, headers=auth(token_for("TENANT_USER", tenant_id))
        )
        assert response.status_code == 200, response.text
        body = response.json()
        start = date.fromisoformat(body["period"]["from"])
        end = date.fromisoformat(body["period"]["to"])
        if "from" in params:
            assert (str(start), str(end)) == (params["from"], params["to"])
        else:
            today = datetime.now(UTC).date()
            assert end == today
            assert (end - start).days + 1 == int(params["period"][:-1])
        assert body["period"]["days"] == (end - start).days + 1

        agent_filter = " AND agent_id = :a" if agent_id else ""
        extra: dict[str, Any] = {"a": agent_id} if agent_id else {}
        where = f"tenant_id = :t AND date BETWEEN :s AND :e{agent_filter}"
        (summary,) = q(
            conn,
            f"SELECT {MEASURES} FROM tenant_usage_daily WHERE {where}",
            t=tenant_id,
            s=start,
            e=end,
            **extra,
        )
        check_measures(body["summary"], summary)

        days = {
            str(row.date): row
            for row in q(
                conn,
                f"SELECT date, {MEASURES} FROM tenant_usage_daily WHERE {where} GROUP BY date",
                t=tenant_id,
                s=start,
                e=end,
                **extra,
            )
        }
        assert [d["date"] for d in body["daily_data"]] == [
            str(start + timedelta(days=i)) for i in range((end - start).days + 1)
        ]
        for item in body["daily_data"]:
            row = days.get(item["date"])
            if row is None:
                assert item["total_requests"] == 0
                assert item["avg_response_time_ms"] == 0
            else:
                check_measures(item, row)

        agents = {
            str(row.agent_id): row
            for row in q(
                conn,
                f"SELECT agent_id, {MEASURES} FROM tenant_usage_daily WHERE {where} "
                "GROUP BY agent_id",
                t=tenant_id,
                s=start,
                e=end,
                **extra,
            )
        }
        assert {a["agent_id"] for a in body["by_agent"]} == set(agents)
        for item in body["by_agent"]:
            check_measures(item, agents[item["agent_id"]])
        totals = [a["total_requests"] for a in body["by_agent"]]
        assert totals == sorted(totals, reverse=True)
        if label.startswith("custom-40d"):
            assert body["summary"]["total_requests"] > 0


def test_usage_of_the_raw_days_equals_the_raw_requests(
    client: TestClient, demo_data: SeedReport, engine: Engine, token_for: Any
) -> None:
    """For the days kept as raw requests, /tenant/usage equals SQL over agent_requests."""
    tenant_id = demo_data.demo_tenant_id
    assert tenant_id is not None
    with engine.connect() as conn:
        (bounds,) = q(
            conn, "SELECT MIN(day), MAX(day) FROM agent_requests WHERE tenant_id = :t", t=tenant_id
        )
        start, end = (date.fromisoformat(str(v)) for v in bounds)
        (raw,) = q(
            conn,
            "SELECT COUNT(*) AS total, "
            "SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS ok, "
            "SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS failed, "
            "SUM(tokens_used) AS tokens "
            "FROM agent_requests WHERE tenant_id = :t AND day BETWEEN :s AND :e",
            t=tenant_id,
            s=start,
            e=end,
        )
    response = client.get(
        "/tenant/usage",
        params={"from": str(start), "to": str(end)},
        headers=auth(token_for("TENANT_ADMIN", tenant_id)),
    )
    summary = response.json()["summary"]
    assert raw.total > 0
    assert summary["total_requests"] == raw.total
    assert summary["successful_requests"] == raw.ok
    assert summary["failed_requests"] == raw.failed
    assert summary["total_tokens"] == raw.tokens


def test_figures_ratios_are_core_numbers() -> None:
    """``usage.service.figures`` writes ``core.numbers.rate`` and ``weighted_avg`` out: the
    same floats for counts of every size, integer or decimal sums, and no requests."""
    from hypothesis import given
    from hypothesis import strategies as st

    from alquimista_ops.core.numbers import rate, weighted_avg
    from alquimista_ops.usage.service import figures

    counts = st.integers(min_value=0, max_value=10**12)
    sums = st.one_of(
        st.floats(min_value=0, max_value=1e15, allow_nan=False),
        st.integers(min_value=0, max_value=10**15).map(Decimal),
        st.none(),
    )

    @given(total=counts, share=st.floats(min_value=0, max_value=1), weighted=sums)
    def check(total: int, share: float, weighted: Any) -> None:
        successful = int(total * share)
        got = figures(total, successful, total - successful, weighted, 7, 0.5)
        assert got["success_rate"] == rate(successful, total)
        assert got["avg_response_time_ms"] == weighted_avg(weighted, total)

    check()
    got = figures(0, 0, 0, None, 0, 0)
    assert got["success_rate"] == got["avg_response_time_ms"] == 0.0
