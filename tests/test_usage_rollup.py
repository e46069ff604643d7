"""The daily rollup equals an independent computation over generated requests, whatever the
batches, days and late arrivals; re-running it changes nothing; stale rows disappear."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from alquimista_ops.core.clock import utcnow
from alquimista_ops.core.schema import agent_requests, tenant_usage_daily
from alquimista_ops.demo.seed import agent_id_for
from alquimista_ops.usage.ingest import References, Validator, ingest_records
from alquimista_ops.usage.jobs import apply_retention, rollup_days
from alquimista_ops.usage.rollup import rollup_range
from alquimista_ops.usage.totals import refresh_usage_totals
from tests.conftest import truncate_data
from tests.usage_helpers import (
    Req,
    agent_prices,
    assert_cumulative_matches_rollup,
    expected_rollup,
    make_tenant,
    stored_counters,
    stored_rollup,
)


def _agents(engine: Engine) -> list[uuid.UUID]:
    from alquimista_ops.demo import catalogue

    names = [entry[0] for entry in catalogue.AGENTS][:3]
    return [agent_id_for(n) for n in names]


def _setup(engine: Engine, tenants: int = 3) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    truncate_data(engine)
    agent_ids = _agents(engine)
    with engine.begin() as conn:
        tenant_ids = [make_tenant(conn, i, agent_ids) for i in range(tenants)]
    return tenant_ids, agent_ids


def _validator() -> Validator:
    return Validator(now=utcnow(), max_skew_seconds=300, retention_days=90)


def _ingest(engine: Engine, reqs: list[Req]) -> Any:
    with engine.begin() as conn:
        return ingest_records(conn, [r.as_json() for r in reqs], _validator(), References())


BASE_DAY = date.today() - timedelta(days=10)

request_spec = st.tuples(
    st.integers(0, 1),  # tenant (few groups, so that groups hold several requests)
    st.integers(0, 1),  # agent
    st.sampled_from(["success", "success", "success", "error"]),
    st.integers(0, 120_000),  # response time
    st.integers(0, 40_000),  # tokens
    st.integers(0, 3),  # day offset
    st.integers(0, 86_399),  # second of the day
    st.integers(0, 999_999),  # microsecond
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    specs=st.lists(request_spec, min_size=30, max_size=150),
    cuts=st.lists(st.integers(0, 150), max_size=6),
    retries=st.lists(st.integers(0, 6), max_size=3),
)
def test_rollup_matches_independent_computation(
    engine: Engine, specs: list[tuple[Any, ...]], cuts: list[int], retries: list[int]
) -> None:
    tenant_ids, agent_ids = _setup(engine)
    with engine.connect() as conn:
        prices = agent_prices(conn)
    reqs = [
        Req(
            request_id=f"req-{i}",
            tenant_id=tenant_ids[t],
            agent_id=agent_ids[a],
            status=status,
            response_time_ms=rt,
            tokens_used=tokens,
            created_at=datetime.combine(BASE_DAY + timedelta(days=d), time(), UTC)
            + timedelta(seconds=sec, microseconds=us),
        )
        for i, (t, a, status, rt, tokens, d, sec, us) in enumerate(specs)
    ]
    # Random batches, in arrival order (later batches hold late data for earlier days).
    bounds = sorted({0, len(reqs), *(c for c in cuts if c < len(reqs))})
    batches = [reqs[a:b] for a, b in itertools.pairwise(bounds) if reqs[a:b]]
    # Some batches are sent twice (a retried call).
    sends = list(batches)
    for r in retries:
        if r < len(batches):
            sends.insert(min(len(sends), r + 1), batches[r])
    ingested: dict[str, Req] = {}
    for batch in sends:
        result = _ingest(engine, batch)
        new = [r for r in batch if r.request_id not in ingested]
        assert result.accepted == len(new)
        assert result.duplicates == len(batch) - len(new)
        ingested.update({r.request_id: r for r in batch})
        days = [r.created_at.date() for r in batch]
        rollup_days(engine, min(days), max(days))
        with engine.connect() as conn:
            assert stored_rollup(conn) == expected_rollup(list(ingested.values()), prices)
            assert_cumulative_matches_rollup(conn)

    with engine.connect() as conn:
        before = stored_rollup(conn)
        counters = stored_counters(conn)
    everything = list(ingested.values())
    for (tenant_id, agent_id), (total, errors, last_used) in counters.items():
        mine = [r for r in everything if (r.tenant_id, r.agent_id) == (tenant_id, agent_id)]
        assert total == len(mine)
        assert errors == sum(1 for r in mine if r.status == "error")
        assert last_used == (max(r.created_at for r in mine) if mine else None)

    # Re-running every day (in one transaction, as RECOMPUTE_USAGE does) changes nothing.
    with engine.begin() as conn:
        result = rollup_range(conn, BASE_DAY, BASE_DAY + timedelta(days=6))
    assert result.rows_read == len(everything)
    with engine.connect() as conn:
        assert stored_rollup(conn) == before
        assert stored_counters(conn) == counters
        assert_cumulative_matches_rollup(conn)


def _req(rid: str, tenant: uuid.UUID, agent: uuid.UUID, day: date, **kw: Any) -> Req:
    values: dict[str, Any] = {
        "status": "success",
        "response_time_ms": 100,
        "tokens_used": 1000,
        "created_at": datetime.combine(day, time(12), UTC),
    }
    values.update(kw)
    return Req(request_id=rid, tenant_id=tenant, agent_id=agent, **values)


def test_rounding_is_half_up_and_cost_uses_the_agent_price(clean_db: Engine) -> None:
    (tenant,), agent_ids = _setup(clean_db, tenants=1)
    agent = agent_ids[0]
    day = BASE_DAY
    # 3 requests: 1 + 2 + 2 ms = 5/3 = 1.666… -> 1.67; then 0.005 boundaries below.
    reqs = [
        _req("a", tenant, agent, day, response_time_ms=1, tokens_used=333),
        _req("b", tenant, agent, day, response_time_ms=2, tokens_used=333),
        _req("c", tenant, agent, day, response_time_ms=2, tokens_used=1, status="error"),
        # 8 requests summing to 2 ms: 0.25 -> 0.25; another day: 1/8 = 0.125 -> 0.13
        *[
            _req(f"d{i}", tenant, agent, day + timedelta(days=1), response_time_ms=0)
            for i in range(7)
        ],
        _req("d7", tenant, agent, day + timedelta(days=1), response_time_ms=1),
    ]
    _ingest(clean_db, reqs)
    rollup_days(clean_db, day, day + timedelta(days=1))
    with clean_db.connect() as conn:
        rows = stored_rollup(conn)
        price = agent_prices(conn)[agent]
    first = rows[(tenant, agent, day)]
    assert first[:3] == (3, 2, 1)
    assert first[3] == Decimal("1.67")
    assert first[4] == 667
    assert first[5] == (Decimal(667) * price / 1000).quantize(Decimal("0.000001"))
    assert rows[(tenant, agent, day + timedelta(days=1))][3] == Decimal("0.13")


def test_days_without_requests_leave_no_stale_rows(clean_db: Engine) -> None:
    (tenant,), agent_ids = _setup(clean_db, tenants=1)
    a0, a1 = agent_ids[0], agent_ids[1]
    d0 = BASE_DAY
    _ingest(clean_db, [_req("x", tenant, a0, d0), _req("y", tenant, a0, d0 + timedelta(days=3))])
    # Stale rows written by hand: a pair with no request on d0, and a day with no request.
    with clean_db.begin() as conn:
        for agent, day in ((a1, d0), (a0, d0 + timedelta(days=1))):
            conn.execute(
                sa.insert(tenant_usage_daily).values(
                    tenant_id=tenant,
                    agent_id=agent,
                    date=day,
                    total_requests=5,
                    successful_requests=5,
                    failed_requests=0,
                    avg_response_time_ms=1,
                    total_tokens_used=1,
                    total_cost_usd=0,
                )
            )
        # History before the oldest raw day (raw rows gone): must survive a re-run.
        conn.execute(
            sa.insert(tenant_usage_daily).values(
                tenant_id=tenant,
                agent_id=a0,
                date=d0 - timedelta(days=1),
                total_requests=9,
                successful_requests=9,
                failed_requests=0,
                avg_response_time_ms=1,
                total_tokens_used=1,
                total_cost_usd=0,
            )
        )
        # Whoever writes tenant_usage_daily refreshes the derived totals.
        refresh_usage_totals(conn, d0 - timedelta(days=1), d0 + timedelta(days=1))
    result = rollup_days(clean_db, d0 - timedelta(days=1), d0 + timedelta(days=3))
    assert result.days_skipped == 1
    assert result.days_rolled == 4
    with clean_db.connect() as conn:
        keys = set(stored_rollup(conn))
        counters = stored_counters(conn)
        assert_cumulative_matches_rollup(conn)
    assert keys == {
        (tenant, a0, d0 - timedelta(days=1)),
        (tenant, a0, d0),
        (tenant, a0, d0 + timedelta(days=3)),
    }
    assert counters[(tenant, a0)][:2] == (11, 0)  # 9 of history + 2 rolled up
    assert counters[(tenant, a1)][:2] == (0, 0)


def test_rollup_of_one_tenant_leaves_the_others(clean_db: Engine) -> None:
    (t0, t1), agent_ids = _setup(clean_db, tenants=2)
    a = agent_ids[0]
    _ingest(clean_db, [_req("p", t0, a, BASE_DAY), _req("q", t1, a, BASE_DAY)])
    with clean_db.begin() as conn:
        result = rollup_range(conn, BASE_DAY, BASE_DAY, tenant_id=t0)
    assert result.tenant_ids == frozenset({t0})
    with clean_db.connect() as conn:
        assert set(stored_rollup(conn)) == {(t0, a, BASE_DAY)}


def test_retention_rolls_up_then_removes_old_raw_rows(clean_db: Engine) -> None:
    (tenant,), agent_ids = _setup(clean_db, tenants=1)
    a = agent_ids[0]
    today = date.today()
    old, recent = today - timedelta(days=40), today - timedelta(days=5)
    _ingest(
        clean_db,
        [_req("o1", tenant, a, old), _req("o2", tenant, a, old), _req("r", tenant, a, recent)],
    )
    changed: list[Any] = []
    kept = apply_retention(clean_db, today, 30, on_usage_changed=changed.append)
    assert (kept.days, kept.rows_deleted) == (1, 2)
    assert changed == [frozenset({tenant})]
    with clean_db.connect() as conn:
        days = set(conn.execute(sa.select(agent_requests.c.day)).scalars())
        rows = stored_rollup(conn)
    assert days == {recent}
    assert rows[(tenant, a, old)][0] == 2  # counted before removal
    # A later rollup over the removed day keeps its figures (no raw data to recompute from).
    rollup_days(clean_db, old, recent)
    with clean_db.connect() as conn:
        assert stored_rollup(conn)[(tenant, a, old)][0] == 2


def test_concurrent_rollups_do_not_collide(clean_db: Engine, settings: Any) -> None:
    import threading

    from alquimista_ops.core.db import create_db_engine

    tenants, agent_ids = _setup(clean_db, tenants=2)
    reqs = [
        _req(f"c{i}", tenants[i % 2], agent_ids[i % 3], BASE_DAY + timedelta(days=i % 3))
        for i in range(300)
    ]
    _ingest(clean_db, reqs)
    engines = [create_db_engine(settings) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def run(engine: Engine) -> None:
        try:
            barrier.wait()
            with engine.begin() as conn:  # one transaction over the range, as a command does
                rollup_range(conn, BASE_DAY, BASE_DAY + timedelta(days=2))
            rollup_days(engine, BASE_DAY, BASE_DAY + timedelta(days=2))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert errors == []
    with clean_db.connect() as conn:
        assert stored_rollup(conn) == expected_rollup(reqs, agent_prices(conn))


def test_process_wide_usage_hook_hears_changed_tenants(clean_db: Engine) -> None:
    from alquimista_ops.usage.jobs import set_usage_changed_hook

    (t0, _t1), agent_ids = _setup(clean_db, tenants=2)
    _ingest(clean_db, [_req("h1", t0, agent_ids[0], BASE_DAY)])
    heard: list[set[uuid.UUID]] = []
    set_usage_changed_hook(lambda ids: heard.append(set(ids)))
    try:
        rollup_days(clean_db, BASE_DAY, BASE_DAY + timedelta(days=1))
    finally:
        set_usage_changed_hook(None)
    assert heard == [{t0}]  # one day had data; t1 had nothing to change
