"""Event-loop reads straight on asyncpg (``core.fastread``): the same answers, values and
errors as through SQLAlchemy's execution layer."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound, StatementError

from alquimista_ops.app import create_app
from alquimista_ops.auth.deps import _TENANT_STATUS
from alquimista_ops.billing.queries import ACTIVE_BY_PLAN_AND_SEGMENT, MOVEMENTS_BY_DAY
from alquimista_ops.core import deps, fastread
from alquimista_ops.core.runtime import build_runtime
from alquimista_ops.core.schema import operational_events, tenants
from alquimista_ops.core.settings import Settings
from alquimista_ops.core.types import utc_date
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.usage.overview_queries import PERIOD_RANKINGS, PLATFORM_DAYS
from tests.conftest import SEED_TODAY, auth, issue_token, make_settings

T = TypeVar("T")

# a statement built once, as the read routes' are: every column type the reads return
TYPED = (
    sa.select(
        tenants.c.id,
        tenants.c.name,
        tenants.c.mrr_estimate,
        sa.cast(tenants.c.mrr_estimate, sa.Float()).label("mrr_float"),
        # a NUMERIC read as a float: SQLAlchemy's result processor converts it
        sa.type_coerce(tenants.c.mrr_estimate, sa.Numeric(asdecimal=False)).label("mrr_number"),
        tenants.c.created_at,
        tenants.c.churned_at,
        utc_date(tenants.c.created_at).label("created_on"),
        sa.func.count().over().label("listed"),
    )
    .where(
        tenants.c.status != sa.bindparam("not_status"),
        tenants.c.created_at < sa.bindparam("before"),
    )
    .order_by(tenants.c.name, tenants.c.id)
)
DETAILS = (
    sa.select(operational_events.c.id, operational_events.c.details)
    .where(operational_events.c.details.is_not(None))
    .order_by(operational_events.c.id)
    .limit(sa.bindparam("limit"))
)
DIVIDE = sa.select((sa.literal_column("1") / sa.bindparam("by", type_=sa.Integer())).label("q"))
ONE_TENANT = sa.select(tenants.c.name).where(tenants.c.id == sa.bindparam("tenant_id"))


def on_event_loop(
    settings: Settings, engine: Engine, fn: Callable[[Connection], T], *, fast: bool = True
) -> T:
    """``fn`` as a server read runs it (``read_db`` with ``async_reads`` open), with the fast
    reads or on SQLAlchemy's asyncpg connection as before them."""
    settings = settings.model_copy(update={"db_fast_reads": fast})

    async def scenario() -> T:
        async with deps.async_reads(settings, engine):
            return await deps.read_db(engine, fn)

    # in a thread of its own: a session's browser (tests/web) keeps an event loop running in
    # the main thread
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, scenario()).result()


def twice(conn: Connection, stmt: Any, params: dict[str, Any] | None = None) -> Any:
    """The second run of ``stmt`` (the first only marks it: a statement is planned when the
    same object runs again)."""
    conn.execute(stmt, params).all()
    return conn.execute(stmt, params)


def test_rows_carry_the_same_values_and_types_as_sqlalchemys(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    params = {"not_status": "inactive", "before": datetime(2100, 1, 1, tzinfo=UTC)}

    def read(conn: Connection) -> tuple[Any, Any, Any, bool]:
        rows = twice(conn, TYPED, params).all()
        details = twice(conn, DETAILS, {"limit": 5}).all()
        return rows, details, type(conn), fastread._plans.get(TYPED) is not None

    expected, expected_details, plain, _ = on_event_loop(settings, engine, read, fast=False)
    rows, details, conn_type, planned = on_event_loop(settings, engine, read)
    assert plain is not fastread.FastReads
    assert conn_type is fastread.FastReads and planned
    assert len(expected) > 5
    with engine.connect() as conn:  # psycopg: the same values
        assert conn.execute(TYPED, params).all() == rows
    assert rows == expected  # tuple equality, row by row
    assert details == expected_details and details  # JSON decoded once, as SQLAlchemy does
    assert isinstance(details[0].details, dict | list)
    first, seen = rows[0], expected[0]
    for key in seen._mapping:
        assert getattr(first, key) == getattr(seen, key)
        assert type(getattr(first, key)) is type(getattr(seen, key)), key
    assert isinstance(first.id, uuid.UUID)
    assert isinstance(first.mrr_estimate, Decimal)
    assert isinstance(first.mrr_float, float)
    assert isinstance(first.mrr_number, float)
    assert isinstance(first.created_on, date)
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset().total_seconds() == 0
    assert first._mapping == dict(seen._mapping)
    assert first[0] == seen[0] and tuple(first) == tuple(seen)


def test_result_methods_behave_as_sqlalchemys(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    assert demo_data.demo_tenant_id is not None
    home = {"tenant_id": demo_data.demo_tenant_id}
    nobody = {"tenant_id": uuid.uuid4()}
    params = {"not_status": "inactive", "before": datetime(2100, 1, 1, tzinfo=UTC)}

    def read(conn: Connection) -> dict[str, Any]:
        twice(conn, ONE_TENANT, home)
        twice(conn, TYPED, params)
        found: dict[str, Any] = {
            "scalar": conn.execute(ONE_TENANT, home).scalar(),
            "scalar_one": conn.execute(ONE_TENANT, home).scalar_one(),
            "none": conn.execute(ONE_TENANT, nobody).scalar_one_or_none(),
            "first": conn.execute(ONE_TENANT, nobody).first(),
            "scalars": conn.execute(TYPED, params).scalars().all(),
            "mappings": conn.execute(TYPED, params).mappings().first(),
            "conn_scalar": conn.scalar(ONE_TENANT, home),
        }
        for name, call in (
            ("one of none", lambda: conn.execute(ONE_TENANT, nobody).one()),
            ("one of many", lambda: conn.execute(TYPED, params).one()),
            ("one_or_none of many", lambda: conn.execute(TYPED, params).one_or_none()),
        ):
            try:
                call()
            except (NoResultFound, MultipleResultsFound) as exc:
                found[name] = type(exc)
        return found

    found = on_event_loop(settings, engine, read)
    with engine.connect() as conn:
        name = conn.execute(ONE_TENANT, home).scalar_one()
        ids = conn.execute(TYPED, params).scalars().all()
        mapping = dict(conn.execute(TYPED, params).mappings().first() or {})
    assert found["scalar"] == found["scalar_one"] == found["conn_scalar"] == name
    assert found["none"] is None and found["first"] is None
    assert found["scalars"] == ids
    assert dict(found["mappings"]) == mapping
    assert found["one of none"] is NoResultFound
    assert found["one of many"] is MultipleResultsFound
    assert found["one_or_none of many"] is MultipleResultsFound


def test_errors_are_sqlalchemys_and_the_connection_stays_usable(
    settings: Settings, engine: Engine
) -> None:
    def read(conn: Connection) -> tuple[Any, Any, Any]:
        assert conn.execute(DIVIDE, {"by": 2}).scalar() == Decimal("0.5")  # marks it
        assert conn.execute(DIVIDE, {"by": 2}).scalar() == Decimal("0.5")  # planned, fast
        errors = []
        for params in ({"by": 0}, {}):  # PostgreSQL's error; a missing parameter
            try:
                conn.execute(DIVIDE, params)
            except (DBAPIError, StatementError) as exc:
                errors.append(exc)
        return errors, conn.execute(DIVIDE, {"by": 1}).scalar(), fastread._plans.get(DIVIDE)

    errors, after, plan = on_event_loop(settings, engine, read)
    assert isinstance(errors[0], DBAPIError) and "division by zero" in str(errors[0])
    assert isinstance(errors[1], StatementError) and "by" in str(errors[1])
    assert after == 1
    assert isinstance(plan, fastread._Plan)


def test_other_statements_run_through_sqlalchemy(settings: Settings, engine: Engine) -> None:
    def read(conn: Connection) -> tuple[int, int, bool]:
        text = sa.text("SELECT 40 + :n")
        built_per_call = [
            conn.execute(sa.select(sa.literal_column("2") + sa.bindparam("n")), {"n": i}).scalar()
            for i in range(3)
        ]
        listed = sa.select(tenants.c.id).where(
            tenants.c.id.in_(sa.bindparam("ids", expanding=True))
        )
        conn.execute(listed, {"ids": [uuid.uuid4()]}).all()
        conn.execute(listed, {"ids": [uuid.uuid4(), uuid.uuid4()]}).all()
        return (
            int(conn.execute(text, {"n": 2}).scalar_one()),
            int(sum(v for v in built_per_call if v is not None)),
            fastread._plans.get(listed) is None,
        )

    before = fastread.planned_statements()
    answer, total, expanding_unplanned = on_event_loop(settings, engine, read)
    assert (answer, total) == (42, 9)
    assert expanding_unplanned  # an expanding IN list is rendered per call: not planned
    assert fastread.planned_statements() == before


@pytest.fixture(scope="module")
def clients(var_dir: Path, pg_database: str, engine: Engine) -> Iterator[dict[str, TestClient]]:
    """The app with the cache off, with the fast reads and without (same signing key)."""
    made: dict[str, TestClient] = {}
    for name, fast in (("fast", "true"), ("sqlalchemy", "false")):
        settings = make_settings(var_dir, pg_database, CACHE_ENABLED="false", DB_FAST_READS=fast)
        made[name] = TestClient(create_app(runtime=build_runtime(settings, engine)))
        made[name].__enter__()
    yield made
    for test_client in made.values():
        test_client.__exit__(None, None, None)


def test_every_read_route_answers_the_same_with_and_without_fast_reads(
    clients: dict[str, TestClient],
    demo_data: SeedReport,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = demo_data.demo_tenant_id
    assert home is not None
    runtime = clients["fast"].app.state.runtime  # type: ignore[attr-defined]
    tenant = auth(issue_token(runtime, "TENANT_USER", home))
    admin = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    with engine.connect() as conn:
        suspended, status = conn.execute(
            sa.select(tenants.c.id, tenants.c.status).where(tenants.c.id != home).limit(1)
        ).one()
    first = (SEED_TODAY.replace(day=1)).isoformat()
    routes = [
        (tenant, f"/tenant/{name}{query}")
        for name in ("me", "agents", "integrations", "incidents", "usage")
        for query in ("", "?period=7d", "?period=90d", f"?from={first}&to={SEED_TODAY}")
    ] + [
        (admin, path)
        for path in (
            "/internal/tenants",
            "/internal/tenants?search=cl%C3%ADnica&status=all",
            "/internal/tenants?sort_by=mrr_estimate&sort_order=desc&limit=3&offset=2",
            f"/internal/tenants/{home}",
            f"/internal/tenants/{home}/agents",
            f"/internal/tenants/{uuid.uuid4()}",
            f"/tenant/me?tenant_id={suspended}",
            "/internal/usage/overview",
            "/internal/usage/overview?period=90d",
            f"/internal/usage/overview?from={first}&to={SEED_TODAY}",
            "/internal/billing/overview",
            "/internal/billing/overview?period=90d",
            "/internal/operations/commands",
        )
    ]
    before = fastread.planned_statements()
    caplog.set_level("WARNING", logger="alquimista_ops.core.deps")
    with engine.begin() as conn:  # a suspended tenant: its reads answer 403 on both paths
        conn.execute(tenants.update().where(tenants.c.id == suspended).values(status="suspended"))
    try:
        for _ in range(2):  # the second round runs on planned statements
            for headers, path in routes:
                fast = clients["fast"].get(path, headers=headers)
                slow = clients["sqlalchemy"].get(path, headers=headers)
                assert fast.status_code == slow.status_code, path
                assert fast.json() == slow.json(), path
                assert fast.status_code in (200, 403, 404), (path, fast.text)
    finally:
        with engine.begin() as conn:
            conn.execute(tenants.update().where(tenants.c.id == suspended).values(status=status))
    assert not [r for r in caplog.records if "prefetched" in r.getMessage()]
    for pair in ((PLATFORM_DAYS, PERIOD_RANKINGS), (ACTIVE_BY_PLAN_AND_SEGMENT, MOVEMENTS_BY_DAY)):
        plans = [fastread._plans.get(stmt) for stmt in pair]  # each overview: one batch
        assert tuple(plan.sql for plan in plans if isinstance(plan, fastread._Plan)) in (
            fastread._batches
        )
    # the answers did come from it: the routes' own statements are planned

    for stmt in (_TENANT_STATUS, ACTIVE_BY_PLAN_AND_SEGMENT, PERIOD_RANKINGS, PLATFORM_DAYS):
        assert isinstance(fastread._plans.get(stmt), fastread._Plan)
    assert fastread.planned_statements() >= max(before, 10)


def test_prefetch_answers_each_statement_as_it_would_run_alone(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    params = {"not_status": "inactive", "before": datetime(2100, 1, 1, tzinfo=UTC)}
    nobody = {"tenant_id": uuid.uuid4()}
    calls: list[fastread.Call] = [
        (TYPED, params),  # many ordered rows, every column type
        (DETAILS, {"limit": 5}),  # JSON
        (ONE_TENANT, nobody),  # no row
        (DIVIDE, {"by": 2}),  # one row, no table
    ]

    def read(conn: Connection) -> dict[str, Any]:
        for stmt, values in calls:  # planned: the batch takes planned statements only
            twice(conn, stmt, values).all()
        fastread.prefetch(conn, calls)
        waiting = conn.unused_prefetches() if isinstance(conn, fastread.FastReads) else None
        answers = [conn.execute(stmt, values).all() for stmt, values in calls]
        other = conn.execute(TYPED, {**params, "not_status": "active"}).all()  # not prefetched
        left = conn.unused_prefetches() if isinstance(conn, fastread.FastReads) else None
        return {"waiting": waiting, "answers": answers, "other": other, "left": left}

    fast = on_event_loop(settings, engine, read)
    plain = on_event_loop(settings, engine, read, fast=False)
    assert (fast["waiting"], fast["left"]) == (len(calls), 0)  # one batch, all taken
    assert plain["waiting"] is None  # SQLAlchemy's connection: prefetch does nothing
    assert fast["answers"] == plain["answers"] and fast["other"] == plain["other"]
    rows, details, none, divided = fast["answers"]
    assert len(rows) > 5 and details and none == [] and divided[0].q == Decimal("0.5")
    assert [row.name for row in rows] == sorted(row.name for row in rows)  # order kept
    for got, seen in zip(rows[0], plain["answers"][0][0], strict=True):
        assert type(got) is type(seen)
    assert isinstance(details[0].details, dict | list)
    assert rows[0]._mapping == plain["answers"][0][0]._mapping
    with engine.connect() as conn:  # psycopg, where prefetch does nothing either
        fastread.prefetch(conn, calls)
        assert conn.execute(TYPED, params).all() == rows


def test_a_failed_prefetch_leaves_each_statement_to_run_alone(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    home = {"tenant_id": demo_data.demo_tenant_id}

    def read(conn: Connection) -> tuple[int, Any, Any, Any]:
        twice(conn, ONE_TENANT, home)
        twice(conn, DIVIDE, {"by": 2})
        fastread.prefetch(conn, [(ONE_TENANT, home), (DIVIDE, {"by": 0})])
        waiting = conn.unused_prefetches()  # type: ignore[attr-defined]
        name = conn.execute(ONE_TENANT, home).scalar_one()
        try:
            conn.execute(DIVIDE, {"by": 0})
            error = None
        except DBAPIError as exc:
            error = exc
        return waiting, name, error, conn.execute(DIVIDE, {"by": 4}).scalar()

    waiting, name, error, after = on_event_loop(settings, engine, read)
    assert waiting == 0  # PostgreSQL refused the batch: nothing was kept from it
    with engine.connect() as conn:
        assert name == conn.execute(ONE_TENANT, home).scalar_one()
    assert isinstance(error, DBAPIError) and "division by zero" in str(error)
    assert after == Decimal("0.25")


def test_pages_answer_the_same_with_one_round_trip(
    clients: dict[str, TestClient], demo_data: SeedReport, caplog: pytest.LogCaptureFixture
) -> None:
    """The pages that prefetch their statements: the same HTML as through SQLAlchemy, and
    every prefetched answer is taken (no warning)."""
    home = demo_data.demo_tenant_id
    runtime = clients["fast"].app.state.runtime  # type: ignore[attr-defined]
    cookies = {"opdash_csrf": "fixed-csrf-token-for-comparison"}
    pages = [
        ("INTERNAL_ADMIN", None, path)
        for path in (
            "/company",
            "/company?period=7d",
            "/company?period=90d",
            f"/company/tenants/{home}",
            f"/company/tenants/{home}?tab=agents",
            "/company/usage?period=90d",
            "/company/billing?period=7d",
        )
    ] + [
        ("INTERNAL_SUPPORT", None, "/company"),
        ("TENANT_ADMIN", home, "/dashboard"),
        ("TENANT_USER", home, "/dashboard?period=7d"),
        ("INTERNAL_SUPPORT", None, f"/dashboard?tenant_id={home}"),
        ("TENANT_USER", home, "/dashboard/agents?status=active"),
        ("TENANT_ADMIN", home, "/dashboard/usage?period=90d"),
        ("TENANT_ADMIN", home, "/dashboard/integrations"),
        ("INTERNAL_ADMIN", None, f"/dashboard/usage?tenant_id={home}"),
        ("INTERNAL_SUPPORT", None, f"/dashboard?tenant_id={uuid.uuid4()}"),  # 404
    ]
    caplog.set_level("WARNING", logger="alquimista_ops.core.deps")
    for _ in range(2):  # the second round runs on planned statements
        for group, tenant, path in pages:
            session = {**cookies, "opdash_session": issue_token(runtime, group, tenant)}
            answers = []
            for name in ("fast", "sqlalchemy"):
                clients[name].cookies.clear()
                for key, value in session.items():
                    clients[name].cookies.set(key, value)
                answers.append(clients[name].get(path))
                clients[name].cookies.clear()
            fast, slow = answers
            assert fast.status_code == slow.status_code, (path, fast.text[:300])
            missing = "tenant_id=" in path and str(home) not in path
            assert fast.status_code == (404 if missing else 200), path
            assert fast.text == slow.text, (group, path)
    assert home is not None
    assert not [r for r in caplog.records if "prefetched" in r.getMessage()]
    plan = fastread._plans.get(PLATFORM_DAYS)
    assert isinstance(plan, fastread._Plan)
    assert any(plan.sql in key for key in fastread._batches)  # it ran in a batch
