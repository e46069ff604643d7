"""Usage-overview and billing figures against independent SQL over generated data.

The overview reads the totals tables (``usage.totals``); the checks here read the rollup
(``tenant_usage_daily``) and ``tenants`` directly.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.billing import service as billing_service
from alquimista_ops.core.params import Period
from alquimista_ops.demo import seed as demo
from alquimista_ops.incidents import service as incidents_service
from alquimista_ops.usage import overview_queries
from alquimista_ops.usage.totals import refresh_period_rankings
from tests.conftest import SEED_TODAY, auth, issue_token, run_reads, truncate_data

START = SEED_TODAY - timedelta(days=119)
END = SEED_TODAY
RANGE = f"from={START}&to={END}"


@pytest.fixture(scope="module")
def generated(engine: Engine, runtime: Any) -> Iterator[None]:
    truncate_data(engine)
    demo.seed(engine, demo.SeedOptions(tenants=70, days=150, seed=11, today=SEED_TODAY))
    runtime.cache.invalidate_all()
    yield
    truncate_data(engine)
    runtime.cache.invalidate_all()


@pytest.fixture(scope="module")
def admin(runtime: Any) -> dict[str, str]:
    return auth(issue_token(runtime, "INTERNAL_ADMIN"))


def _dates() -> dict[str, Any]:
    return {"start": START, "end": END}


def _q(conn: Connection, sql: str, **params: Any) -> list[Any]:
    clause = sa.text(sql)
    for name, value in params.items():
        if isinstance(value, date) and not isinstance(value, datetime):
            clause = clause.bindparams(sa.bindparam(name, type_=sa.Date()))
    return list(conn.execute(clause, params))


@pytest.mark.parametrize(
    ("days", "stored"),
    [(120, False), (30, True), (90, True)],
    ids=["ranked-on-read", "stored-30d", "stored-90d"],
)
def test_overview_matches_sql(
    client: TestClient,
    admin: dict[str, str],
    engine: Engine,
    runtime: Any,
    generated: None,
    days: int,
    stored: bool,
) -> None:
    """Ranked on the read (a custom range) or from the stored rankings of a standard period
    (``usage_period_rankings``), the overview agrees with SQL over the rollup."""
    start = END - timedelta(days=days - 1)
    with engine.begin() as conn:
        refresh_period_rankings(conn, END)
        rows = overview_queries.PERIOD_RANKINGS.execute(
            conn, start=start, end=END, top=overview_queries.TOP
        ).all()
        assert (overview_queries.stored_rankings(rows) is not None) == stored
    runtime.cache.invalidate_all()
    body = client.get(f"/internal/usage/overview?from={start}&to={END}", headers=admin).json()
    where = "date BETWEEN :start AND :end"
    dates = {"start": start, "end": END}
    with engine.connect() as conn:
        total = _q(
            conn,
            f"SELECT SUM(total_requests) req, SUM(successful_requests) s, SUM(failed_requests) f,"
            f" SUM(avg_response_time_ms * total_requests) w, SUM(total_tokens_used) k,"
            f" SUM(total_cost_usd) c, COUNT(DISTINCT tenant_id) n"
            f" FROM tenant_usage_daily WHERE {where}",
            **dates,
        )[0]
        top_tenants = _q(
            conn,
            f"SELECT tenant_id, SUM(total_requests) req FROM tenant_usage_daily WHERE {where}"
            " GROUP BY tenant_id ORDER BY req DESC, tenant_id LIMIT 10",
            **dates,
        )
        top_agents = _q(
            conn,
            f"SELECT d.agent_id, SUM(d.total_requests) req, SUM(d.successful_requests) s"
            f" FROM tenant_usage_daily d WHERE {where} GROUP BY d.agent_id",
            **dates,
        )
        by_day = {
            r.date: r
            for r in _q(
                conn,
                "SELECT date, SUM(total_requests) req,"
                " SUM(avg_response_time_ms * total_requests) w,"
                f" COUNT(DISTINCT tenant_id) n FROM tenant_usage_daily WHERE {where} GROUP BY date",
                **dates,
            )
        }
        counts = _q(
            conn,
            "SELECT (SELECT COUNT(*) FROM tenants) a,"
            " (SELECT COUNT(*) FROM tenants WHERE status = 'active') b,"
            " (SELECT COUNT(*) FROM tenant_agents WHERE status = 'active') c",
        )[0]
    stats = body["global_stats"]
    assert stats["total_requests"] == int(total.req) > 0
    assert stats["successful_requests"] == int(total.s)
    assert stats["failed_requests"] == int(total.f)
    assert stats["global_success_rate"] == round(float(total.s) * 100 / float(total.req), 2)
    assert stats["avg_response_time_ms"] == round(float(total.w) / float(total.req), 2)
    assert stats["total_tokens"] == int(total.k)
    assert stats["total_cost_usd"] == pytest.approx(float(total.c), abs=1e-6)
    assert stats["tenants_with_usage"] == int(total.n)
    assert (stats["total_tenants"], stats["active_tenants"], stats["total_agents_deployed"]) == (
        int(counts.a),
        int(counts.b),
        int(counts.c),
    )
    assert [(t["tenant_id"], t["total_requests"]) for t in body["top_tenants"]] == [
        (str(r.tenant_id), int(r.req)) for r in top_tenants
    ]
    expected_agents = sorted(top_agents, key=lambda r: -int(r.req))[:10]
    assert [a["total_requests"] for a in body["top_agents"]] == [
        int(r.req) for r in expected_agents
    ]
    agent_rows = {str(r.agent_id): r for r in top_agents}
    for agent in body["top_agents"]:
        row = agent_rows[agent["agent_id"]]
        assert agent["success_rate"] == round(float(row.s) * 100 / float(row.req), 2)
    assert len(body["daily_trends"]) == days
    for point in body["daily_trends"]:
        row = by_day.get(date.fromisoformat(point["date"]))
        assert point["total_requests"] == (int(row.req) if row else 0)
        assert point["tenants_with_usage"] == (int(row.n) if row else 0)
        if row and row.req:
            assert point["avg_response_time_ms"] == round(float(row.w) / float(row.req), 2)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def test_billing_matches_sql(
    client: TestClient, admin: dict[str, str], engine: Engine, generated: None
) -> None:
    body = client.get(f"/internal/billing/overview?{RANGE}", headers=admin).json()
    start, end = _midnight(START), _midnight(END + timedelta(days=1))
    paying = "(status = 'active' OR churned_at IS NOT NULL)"
    with engine.connect() as conn:
        active = _q(
            conn, "SELECT COUNT(*) n, SUM(mrr_estimate) m FROM tenants WHERE status = 'active'"
        )[0]
        by_plan = {
            r.plan: r
            for r in _q(
                conn,
                "SELECT plan, COUNT(*) n, SUM(mrr_estimate) m FROM tenants"
                " WHERE status = 'active' GROUP BY plan",
            )
        }
        by_segment = {
            r.segment: r
            for r in _q(
                conn,
                "SELECT segment, COUNT(*) n, SUM(mrr_estimate) m FROM tenants"
                " WHERE status = 'active' GROUP BY segment",
            )
        }
        new = _q(
            conn,
            f"SELECT COUNT(*) n, COALESCE(SUM(mrr_estimate), 0) m FROM tenants"
            f" WHERE created_at >= :s AND created_at < :e AND {paying}",
            s=start,
            e=end,
        )[0]
        churned = _q(
            conn,
            "SELECT COUNT(*) n, COALESCE(SUM(mrr_estimate), 0) m FROM tenants"
            " WHERE churned_at >= :s AND churned_at < :e",
            s=start,
            e=end,
        )[0]
        moved = _q(
            conn,
            f"SELECT mrr_estimate, created_at, churned_at FROM tenants WHERE {paying} AND"
            " ((created_at >= :s AND created_at < :e) OR (churned_at >= :s AND churned_at < :e))",
            s=start,
            e=end,
        )
        trend = []
        day = START
        while day <= END:
            cut = _midnight(day + timedelta(days=1))
            value = _q(
                conn,
                f"SELECT COALESCE(SUM(mrr_estimate), 0) m FROM tenants WHERE created_at < :cut"
                f" AND (churned_at IS NULL OR churned_at >= :cut) AND {paying}",
                cut=cut,
            )[0].m
            trend.append((day.isoformat(), float(Decimal(value))))
            day += timedelta(days=1)
    assert churned.n > 0 and new.n > 0, "the generated data must have movements"
    assert body["total_mrr"] == pytest.approx(float(active.m), abs=0.005)
    assert body["arr"] == pytest.approx(float(active.m) * 12, abs=0.005)
    assert body["active_tenants"] == int(active.n)
    assert body["avg_mrr_per_tenant"] == pytest.approx(float(active.m) / int(active.n), abs=0.01)
    assert body["new_mrr_this_period"] == pytest.approx(float(new.m), abs=0.005)
    assert body["new_tenants_this_period"] == int(new.n)
    assert body["churned_mrr_this_period"] == pytest.approx(float(churned.m), abs=0.005)
    assert body["churned_tenants_this_period"] == int(churned.n)
    for item in body["by_plan"]:
        row = by_plan.get(item["plan"])
        assert item["tenants"] == (int(row.n) if row else 0)
        assert item["mrr"] == pytest.approx(float(row.m) if row else 0.0, abs=0.005)
    assert {i["plan"] for i in body["by_plan"]} >= set(by_plan)
    for item in body["by_segment"]:
        row = by_segment.get(item["segment"])
        assert item["tenants"] == (int(row.n) if row else 0)
        assert item["mrr"] == pytest.approx(float(row.m) if row else 0.0, abs=0.005)
    got = [(p["date"], p["mrr"]) for p in body["revenue_trend"]]
    assert [d for d, _ in got] == [d for d, _ in trend]
    for (_, mine), (_, theirs) in zip(got, trend, strict=True):
        assert mine == pytest.approx(theirs, abs=0.005)
    # Each day's movements, by the UTC day of the creation / churn.
    new_by_day: dict[str, Decimal] = {}
    churned_by_day: dict[str, Decimal] = {}
    for row in moved:
        for at, into in ((row.created_at, new_by_day), (row.churned_at, churned_by_day)):
            if at is not None and start <= at < end:
                key = at.astimezone(UTC).date().isoformat()
                into[key] = into.get(key, Decimal(0)) + Decimal(row.mrr_estimate)
    assert any(new_by_day.values()) and any(churned_by_day.values())
    for point in body["revenue_trend"]:
        assert point["new_mrr"] == float(new_by_day.get(point["date"], Decimal(0))), point
        assert point["churned_mrr"] == float(churned_by_day.get(point["date"], Decimal(0))), point
    # A true running MRR: it falls on churn days, and ends at today's MRR.
    assert any(b[1] < a[1] for a, b in itertools.pairwise(got))
    assert got[-1][1] == pytest.approx(body["total_mrr"], abs=0.005)
    assert body["mrr_at_period_start"] + body["net_new_mrr_this_period"] == pytest.approx(
        got[-1][1], abs=0.01
    )


def test_billing_lists_every_plan_even_without_active_tenants(
    engine: Engine, generated: None
) -> None:
    """Plans without active tenants (and an empty database) still answer, in price order."""
    period = Period(START, END, "custom")
    with engine.connect() as conn, conn.begin() as transaction:
        plan_order = [
            r.name for r in _q(conn, "SELECT name FROM plans ORDER BY price_monthly_brl, name")
        ]
        kept = plan_order[0]
        conn.execute(
            sa.text(
                "UPDATE tenants SET status = 'inactive' WHERE plan <> :p AND status = 'active'"
            ),
            {"p": kept},
        )
        body = run_reads(conn, lambda reads: billing_service.billing_overview(reads, period))
        active = _q(
            conn,
            "SELECT segment, COUNT(*) n, SUM(mrr_estimate) m FROM tenants"
            " WHERE status = 'active' GROUP BY segment",
        )
        assert [p["plan"] for p in body["by_plan"]] == plan_order
        assert [p["tenants"] for p in body["by_plan"][1:]] == [0] * (len(plan_order) - 1)
        assert body["by_plan"][0]["tenants"] == body["active_tenants"] == sum(r.n for r in active)
        segments = {r.segment: r for r in active}
        for item in body["by_segment"]:
            row = segments.get(item["segment"])
            assert item["tenants"] == (int(row.n) if row else 0)
            assert item["mrr"] == pytest.approx(float(row.m) if row else 0.0, abs=0.005)

        conn.execute(sa.text("DELETE FROM tenants"))
        empty = run_reads(conn, lambda reads: billing_service.billing_overview(reads, period))
        transaction.rollback()
    assert [p["plan"] for p in empty["by_plan"]] == plan_order
    assert all(p["tenants"] == 0 and p["mrr"] == 0.0 for p in empty["by_plan"])
    assert all(s["tenants"] == 0 and s["share"] == 0.0 for s in empty["by_segment"])
    assert (empty["total_mrr"], empty["active_tenants"], empty["mrr_at_period_start"]) == (
        0.0,
        0,
        0.0,
    )
    assert {p["mrr"] for p in empty["revenue_trend"]} == {0.0}


def test_support_cannot_read_billing(client: TestClient, runtime: Any, generated: None) -> None:
    token = issue_token(runtime, "INTERNAL_SUPPORT")
    response = client.get("/internal/billing/overview", headers=auth(token))
    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (date(2026, 9, 1), date(2026, 10, 31)),  # whole months only
        (date(2026, 11, 3), date(2026, 11, 20)),  # inside one month
        (date(2026, 7, 15), date(2026, 11, 29)),  # partial, whole, partial
        (date(2026, 10, 31), date(2026, 11, 1)),  # two partial months
    ],
)
def test_top_tenants_for_any_range(
    client: TestClient,
    admin: dict[str, str],
    engine: Engine,
    generated: None,
    first: date,
    last: date,
) -> None:
    body = client.get(f"/internal/usage/overview?from={first}&to={last}", headers=admin).json()
    with engine.connect() as conn:
        rows = _q(
            conn,
            "SELECT tenant_id, SUM(total_requests) req FROM tenant_usage_daily"
            " WHERE date BETWEEN :start AND :end GROUP BY tenant_id"
            " HAVING SUM(total_requests) > 0 ORDER BY req DESC, tenant_id",
            start=first,
            end=last,
        )
    assert [(t["tenant_id"], t["total_requests"]) for t in body["top_tenants"]] == [
        (str(r.tenant_id), int(r.req)) for r in rows[:10]
    ]
    assert body["global_stats"]["tenants_with_usage"] == len(rows)


def test_open_incident_counters_match_sql(engine: Engine, runtime: Any, generated: None) -> None:
    """The landing page's open / critical-open counts (``open_counters``, from the running
    counts of the open incidents) against a count over every event."""
    counted = run_reads(runtime, incidents_service.open_counters)
    with engine.connect() as conn:
        events = _q(conn, "SELECT severity, resolved_at FROM operational_events")
    still_open = [e.severity for e in events if e.resolved_at is None and e.severity != "info"]
    assert len(still_open) < len(events)
    assert (counted.open, counted.critical_open) == (
        len(still_open),
        still_open.count("critical"),
    )
    assert counted.critical_open > 0
