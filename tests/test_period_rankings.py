"""The staff usage overview's stored period rankings (``usage_period_rankings``): written by the
rollup in its own transaction, read with live names, statuses and deployments, stored by the
scheduler when missing, and the same figures as ranking on the read."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.core.clock import utcnow, utctoday
from alquimista_ops.core.params import Period, resolve_period
from alquimista_ops.core.schema import (
    tenant_agents,
    tenants,
    usage_period_rankings,
    usage_period_snapshots,
)
from alquimista_ops.usage import overview, overview_queries
from alquimista_ops.usage.ingest import References, Validator, ingest_records
from alquimista_ops.usage.jobs import rollup_days
from alquimista_ops.usage.scheduler import DailyRollupScheduler, TickOutcome
from tests.conftest import auth, issue_token, run_reads
from tests.usage_helpers import Req, make_tenant


def _agents() -> list[uuid.UUID]:
    from alquimista_ops.demo import catalogue
    from alquimista_ops.demo.seed import agent_id_for

    return [agent_id_for(entry[0]) for entry in catalogue.AGENTS[:2]]


def _requests(engine: Engine, tenant: uuid.UUID, agent: uuid.UUID, day: date, n: int) -> None:
    reqs = [
        Req(
            request_id=f"{tenant.hex[:8]}-{day}-{i}",
            tenant_id=tenant,
            agent_id=agent,
            status="error" if i % 4 == 0 else "success",
            response_time_ms=100 + i,
            tokens_used=1000,
            created_at=datetime.combine(day, time(12, 0, i % 60), UTC),
        )
        for i in range(n)
    ]
    validator = Validator(now=utcnow(), max_skew_seconds=300, retention_days=90)
    with engine.begin() as conn:
        ingest_records(conn, [r.as_json() for r in reqs], validator, References())
    rollup_days(engine, day, day)


def _snapshots(engine: Engine) -> list[tuple[date, date]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(usage_period_snapshots.c.period_start, usage_period_snapshots.c.period_end)
        ).all()
    return sorted((r[0], r[1]) for r in rows)


def _standard_periods(today: date) -> list[tuple[date, date]]:
    return sorted(
        (end - timedelta(days=days - 1), end)
        for end in (today, today + timedelta(days=1))
        for days in (7, 30, 90)
    )


def _stored(conn: Connection, period: Period) -> Any:
    """The stored rankings of ``period`` (``stored_rankings``), None when it has none."""
    rows = overview_queries.PERIOD_RANKINGS.execute(
        conn, start=period.start, end=period.end, top=overview_queries.TOP
    ).all()
    return overview_queries.stored_rankings(rows)


def _overview(runtime: Any, period: Period, top: int = overview_queries.TOP) -> Any:
    return run_reads(runtime, lambda reads: overview.usage_overview(reads, period, top))


def _stored_order(engine: Engine, period: Period) -> list[tuple[uuid.UUID, int]]:
    with engine.connect() as conn:
        stored = _stored(conn, period)
    assert stored is not None
    return [(uuid.UUID(str(row.tenant_id)), int(row.total_requests)) for row in stored[0]]


def test_a_rollup_reranks_the_stored_periods_in_its_transaction(
    clean_db: Engine, client: TestClient, runtime: Any
) -> None:
    engine = clean_db
    agents = _agents()
    with engine.begin() as conn:
        t0, t1, t2 = (make_tenant(conn, i, agents) for i in range(3))
    today = utctoday()
    _requests(engine, t0, agents[0], today - timedelta(days=3), 5)
    _requests(engine, t1, agents[1], today - timedelta(days=3), 3)
    _requests(engine, t2, agents[0], today - timedelta(days=3), 1)

    assert _snapshots(engine) == _standard_periods(today)
    week = resolve_period("7d", None, None)
    assert _stored_order(engine, week) == [(t0, 5), (t1, 3), (t2, 1)]

    # More requests for the last tenant, a day later: the rollup of that day re-ranks.
    _requests(engine, t2, agents[1], today - timedelta(days=2), 10)
    assert _stored_order(engine, week) == [(t2, 11), (t0, 5), (t1, 3)]
    runtime.cache.invalidate_all()
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    body = client.get("/internal/usage/overview?period=7d", headers=admin).json()
    assert [(t["tenant_id"], t["total_requests"]) for t in body["top_tenants"]] == [
        (str(t2), 11),
        (str(t0), 5),
        (str(t1), 3),
    ]
    assert body["global_stats"]["tenants_with_usage"] == 3
    assert [(a["agent_id"], a["total_requests"]) for a in body["top_agents"]] == [
        (str(agents[1]), 13),
        (str(agents[0]), 6),
    ]


def test_names_statuses_and_deployments_are_read_live(clean_db: Engine, runtime: Any) -> None:
    engine = clean_db
    agents = _agents()
    with engine.begin() as conn:
        t0, t1 = (make_tenant(conn, i, agents) for i in range(2))
    today = utctoday()
    _requests(engine, t0, agents[0], today - timedelta(days=1), 4)
    _requests(engine, t1, agents[0], today - timedelta(days=1), 2)
    period = resolve_period("30d", None, None)
    before = _overview(runtime, period)
    with engine.begin() as conn:  # no usage change, so no refresh of the rankings
        conn.execute(
            tenants.update()
            .where(tenants.c.id == t0)
            .values(name="Renomeada Ltda", status="suspended")
        )
        conn.execute(
            tenant_agents.update()
            .where(tenant_agents.c.tenant_id == t1, tenant_agents.c.agent_id == agents[0])
            .values(status="inactive")
        )
    with engine.connect() as conn:
        assert _stored(conn, period) is not None
    after = _overview(runtime, period)
    top = after["top_tenants"][0]
    assert (top["tenant_id"], top["name"], top["status"]) == (t0, "Renomeada Ltda", "suspended")
    deployed = before["global_stats"]["total_agents_deployed"]
    assert after["global_stats"]["total_agents_deployed"] == deployed - 1
    assert after["top_agents"][0]["active_deployments"] == (
        before["top_agents"][0]["active_deployments"] - 1
    )


def test_the_scheduler_stores_missing_rankings(clean_db: Engine, settings: Any) -> None:
    engine = clean_db
    agents = _agents()
    with engine.begin() as conn:
        tenant = make_tenant(conn, 0, agents)
    today = utctoday()
    _requests(engine, tenant, agents[0], today - timedelta(days=1), 3)
    with engine.begin() as conn:  # as after the migration that added the tables
        conn.execute(usage_period_snapshots.delete())
    assert _snapshots(engine) == []

    scheduler = DailyRollupScheduler(engine, settings)
    before_run_time = datetime.combine(today, time(0, 5), UTC)
    assert scheduler.tick(before_run_time).outcome is TickOutcome.NOT_DUE
    assert _snapshots(engine) == _standard_periods(today)
    assert _stored_order(engine, resolve_period("90d", None, None)) == [(tenant, 3)]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(usage_period_rankings))
        rows = stored.scalar_one()
    assert rows == 6 * 2  # six periods, each one tenant and one agent
    scheduler.tick(before_run_time)  # present: nothing rewritten
    assert _snapshots(engine) == _standard_periods(today)


def test_stored_and_ranked_on_read_agree(
    clean_db: Engine, runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alquimista_ops.demo import seed as demo

    engine = clean_db
    demo.seed(engine, demo.SeedOptions(tenants=14, days=100, seed=5, today=utctoday()))
    assert _snapshots(engine) == _standard_periods(utctoday())

    def ranked_on_read(period: Period, top: int = overview_queries.TOP) -> Any:
        """The overview with no stored rankings found: ranked on the read."""
        with monkeypatch.context() as patch:
            patch.setattr(overview_queries, "stored_rankings", lambda _rows: None)
            return _overview(runtime, period, top)

    for name in ("7d", "30d", "90d"):
        period = resolve_period(name, None, None)
        with engine.connect() as conn:
            assert _stored(conn, period) is not None, name
        stored = _overview(runtime, period)
        ranked = ranked_on_read(period)
        assert stored["top_tenants"], name
        assert stored == ranked, name
        # the first ``top`` only (the staff landing shows five), stored or ranked on the read
        first = _overview(runtime, period, 3)
        assert ranked_on_read(period, 3) == first, name
        for ranking in ("top_tenants", "top_agents"):
            assert len(stored[ranking]) > 3 and first[ranking] == stored[ranking][:3], name
        assert {**first, "top_tenants": [], "top_agents": []} == {
            **stored,
            "top_tenants": [],
            "top_agents": [],
        }, name
    with engine.begin() as conn:  # the demo reset leaves no rankings of the data it drops
        demo.reset(conn)
    assert _snapshots(engine) == []
