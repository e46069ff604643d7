"""The read path (``core.reads``): every read statement the routes and pages send answers the
same rows on the write transactions' path (``Query.execute`` on SQLAlchemy), alone through
``Reads`` and inside a ``reads.gather`` batch; routes answer the same bytes with and without
batching; a batch is one round trip; connection loss, statement timeouts, an unreachable server
and SQL errors; the pools, the gate and the sessions' settings; and the read cache's
single flight of a miss (``core.http_cache.cached_value``)."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.app import create_app
from alquimista_ops.auth.deps import TENANT_STATUS
from alquimista_ops.billing.queries import ACTIVE_BY_PLAN_AND_SEGMENT
from alquimista_ops.commands.queries import TENANT_NAMES
from alquimista_ops.core.cache import Cache, CacheKey
from alquimista_ops.core.db import create_read_database
from alquimista_ops.core.errors import DatabaseUnavailable
from alquimista_ops.core.http_cache import cached_value
from alquimista_ops.core.reads import Query, ReadDatabase, Reads
from alquimista_ops.core.schema import operational_events, tenant_agents, tenants
from alquimista_ops.core.settings import Settings
from alquimista_ops.core.types import utc_date
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime, build_runtime
from tests.conftest import (
    SEED_TODAY,
    auth,
    free_port,
    issue_token,
    make_settings,
    run_reads,
)
from tests.reads_support import StatementLog, is_batch, logged_runtime

T = TypeVar("T")

# -- statements of these tests -------------------------------------------------------------------
# every column type the reads return: UUID, text, NUMERIC, double, timestamptz, a NULL timestamp,
# a date, a BIGINT window count
TYPED = Query(
    sa.select(
        tenants.c.id,
        tenants.c.name,
        tenants.c.mrr_estimate,
        sa.cast(tenants.c.mrr_estimate, sa.Float()).label("mrr_float"),
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
DETAILS = Query(  # JSON
    sa.select(operational_events.c.id, operational_events.c.details)
    .where(operational_events.c.details.is_not(None))
    .order_by(operational_events.c.id)
    .limit(sa.bindparam("limit"))
)
CONFIGS = Query(  # JSON objects and JSON nulls beside SQL NULLs
    sa.select(tenant_agents.c.id, tenant_agents.c.config, tenant_agents.c.last_error)
    .order_by(tenant_agents.c.id)
    .limit(sa.bindparam("limit"))
)
DIVIDE = Query(
    sa.select((sa.literal_column("1") / sa.bindparam("by", type_=sa.Integer())).label("q"))
)
BACKEND = Query(sa.select(sa.func.pg_backend_pid().label("pid")))
SESSION_SETTINGS = Query(
    sa.select(
        sa.func.current_setting("plan_cache_mode").label("plans"),
        sa.func.current_setting("search_path").label("search_path"),
        sa.func.current_setting("statement_timeout").label("timeout"),
    )
)
SLEEP = Query(  # ``tag`` back after ``seconds``
    sa.select(
        sa.func.count().label("slept"), sa.bindparam("tag", type_=sa.Integer()).label("tag")
    ).select_from(sa.func.pg_sleep(sa.bindparam("seconds", type_=sa.Float())))
)
STATEMENT_TIMEOUT = Query(  # for the rest of the session (``set_config``: a SELECT)
    sa.select(
        sa.func.set_config(
            "statement_timeout", sa.bindparam("timeout", type_=sa.String()), False
        ).label("timeout")
    )
)


def in_thread(scenario: Callable[[], Awaitable[T]]) -> T:
    """``asyncio.run(scenario())`` in a thread of its own (the session's test client keeps an
    event loop running in another)."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, scenario()).result()  # type: ignore[arg-type]


def logged_database(
    settings: Settings, engine: Engine, **changes: Any
) -> tuple[ReadDatabase, StatementLog]:
    """A ``ReadDatabase`` of its own on the test database (``changes``: its attributes, e.g.
    ``concurrency``), with its statements logged."""
    database = create_read_database(settings, engine)
    for name, value in changes.items():
        setattr(database, name, value)
    log = StatementLog()
    database.query_loggers.append(log)
    return database, log


def named(database: ReadDatabase, application_name: str) -> ReadDatabase:
    """``database`` with its connections named (``pg_stat_activity.application_name``)."""
    separator = "&" if "?" in database.dsn else "?"
    database.dsn = f"{database.dsn}{separator}application_name={application_name}"
    return database


def backends(engine: Engine, application_name: str) -> list[int]:
    """The server processes of the connections named ``application_name``."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            ).scalars()
        )


def terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()


# -- the statements the routes and pages send ------------------------------------------------------
@dataclass
class Walk:
    """The read API routes and pages of the seeded data, as (who, path, expected status)."""

    home: uuid.UUID
    suspended: uuid.UUID
    agent: uuid.UUID
    command: uuid.UUID
    tokens: dict[str, str] = field(default_factory=dict)
    nobody: uuid.UUID = field(default_factory=uuid.uuid4)  # no tenant, agent or command

    def api(self) -> list[tuple[str, str, int]]:
        first = SEED_TODAY.replace(day=1).isoformat()
        custom = f"from={first}&to={SEED_TODAY}"  # not a stored period: ranked on the read
        home, nobody = self.home, self.nobody
        tenant = [
            "/tenant/me",
            "/tenant/agents",
            "/tenant/agents?status=all",
            "/tenant/agents?status=error",
            "/tenant/integrations",
            "/tenant/integrations?status=active",
            "/tenant/integrations?type=whatsapp",
            "/tenant/integrations?status=error&type=crm",
            "/tenant/incidents",
            "/tenant/incidents?status=open",
            "/tenant/incidents?status=resolved&severity=critical",
            "/tenant/incidents?limit=3&offset=2",
            "/tenant/incidents?offset=10000",
            "/tenant/usage",
            "/tenant/usage?period=7d",
            "/tenant/usage?period=90d",
            f"/tenant/usage?{custom}",
            f"/tenant/usage?agent_id={self.agent}",
        ]
        staff = [
            "/internal/tenants",
            "/internal/tenants?search=cl%C3%ADnica&status=all",
            "/internal/tenants?search=a&status=all",
            "/internal/tenants?search=12&status=all",
            "/internal/tenants?sort_by=mrr_estimate&sort_order=desc&limit=3&offset=2",
            "/internal/tenants?sort_by=created_at&status=all&plan=starter",
            "/internal/tenants?segment=saude&status=suspended",
            "/internal/tenants?offset=5000",
            f"/internal/tenants/{home}",
            f"/internal/tenants/{home}/agents",
            f"/internal/tenants/{self.suspended}",
            f"/tenant/me?tenant_id={self.suspended}",
            f"/tenant/usage?tenant_id={home}&period=7d",
            "/internal/usage/overview",
            "/internal/usage/overview?period=7d",
            "/internal/usage/overview?period=90d",
            f"/internal/usage/overview?{custom}",
            "/internal/billing/overview",
            "/internal/billing/overview?period=90d",
            f"/internal/billing/overview?{custom}",
            "/internal/operations/commands",
            "/internal/operations/commands?status=PENDING&command_type=HEALTH_CHECK",
            f"/internal/operations/commands?tenant_id={home}&limit=1",
            f"/internal/operations/commands/{self.command}",
        ]
        return [
            *(("tenant", path, 200) for path in tenant),
            *(("admin", path, 200) for path in staff),
            ("tenant", f"/tenant/usage?agent_id={nobody}", 404),
            ("admin", f"/internal/tenants/{nobody}", 404),
            ("admin", f"/internal/tenants/{nobody}/agents", 404),
            ("admin", f"/tenant/me?tenant_id={nobody}", 404),
            ("admin", f"/internal/operations/commands/{nobody}", 404),
            ("suspended", "/tenant/me", 403),
            ("suspended", "/tenant/agents", 403),
        ]

    def pages(self) -> list[tuple[str, str, int]]:
        home = self.home
        company = [
            "/company",
            "/company?period=7d",
            "/company?period=90d",
            "/company/tenants",
            "/company/tenants?q=cl%C3%ADnica&status=all&sort=mrr_estimate&order=desc",
            f"/company/tenants/{home}",
            f"/company/tenants/{home}?tab=agents",
            f"/company/tenants/{home}?tab=users",
            f"/company/tenants/{home}?tab=incidents&status=open",
            "/company/usage?period=90d",
            "/company/billing?period=7d",
            "/company/operations",
            f"/dashboard?tenant_id={home}",
        ]
        tenant = [
            "/dashboard",
            "/dashboard?period=7d",
            "/dashboard/agents?status=active",
            "/dashboard/usage?period=90d",
            f"/dashboard/usage?agent_id={self.agent}",
            "/dashboard/integrations",
            "/dashboard/support?status=open",
        ]
        return [
            *(("admin", path, 200) for path in company),
            ("support", "/company", 200),
            *(("tenant", path, 200) for path in tenant),
            ("support", f"/dashboard?tenant_id={self.nobody}", 404),
            ("suspended", "/dashboard", 403),
        ]


CSRF = {"opdash_csrf": "fixed-csrf-token-for-comparison"}


def fetch(client: TestClient, walk: Walk, who: str, path: str, page: bool) -> Any:
    """``path`` as ``who`` (a page with the session cookie, a fixed CSRF cookie)."""
    client.cookies.clear()
    if not page:
        return client.get(path, headers=auth(walk.tokens[who]))
    for key, value in {**CSRF, "opdash_session": walk.tokens[who]}.items():
        client.cookies.set(key, value)
    try:
        return client.get(path, follow_redirects=False)
    finally:
        client.cookies.clear()


@dataclass
class Answer:
    status: int
    body: bytes
    statements: list[str]


def walk_all(client: TestClient, walk: Walk, log: StatementLog) -> dict[tuple[str, str], Answer]:
    """Every route and page of ``walk`` once: its answer and the statements it sent."""
    answers = {}
    for page, routes in ((False, walk.api()), (True, walk.pages())):
        for who, path, expected in routes:
            log.clear()
            response = fetch(client, walk, who, path, page)
            assert response.status_code == expected, (who, path, response.text[:500])
            answers[(who, path)] = Answer(response.status_code, response.content, log.statements)
    return answers


class Recorder:
    """The statements and parameters given to ``Reads`` (its public methods wrapped)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Query, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def wrap(self, method: Any) -> Any:
        async def recorded(reads: Reads, query: Query, /, **params: Any) -> Any:
            with self._lock:
                self.calls.append((query, params))
            return await method(reads, query, **params)

        return recorded


def _read_modules() -> list[Any]:
    # every module of the application the app imports (the migrations' are not imported)
    return [
        module
        for name, module in sorted(sys.modules.items())
        if name.startswith("alquimista_ops.") and module is not None
    ]


def declared_queries() -> dict[str, Query]:
    """Every ``Query`` declared as a module constant in the application, by qualified name."""
    found: dict[int, tuple[str, Query]] = {}
    for module in _read_modules():
        for name, value in vars(module).items():
            if isinstance(value, Query) and id(value) not in found:
                found[id(value)] = (f"{module.__name__}.{name}", value)
    return dict(found.values())


def query_builders() -> dict[str, Any]:
    """Every ``functools.cache``d function of the application that returns a ``Query``."""
    found: dict[str, Any] = {}
    for module in _read_modules():
        for name, value in vars(module).items():
            wrapped = getattr(value, "__wrapped__", None)
            if (
                callable(value)
                and hasattr(value, "cache_info")
                and wrapped is not None
                and getattr(wrapped, "__module__", None) == module.__name__
                and inspect.get_annotations(wrapped).get("return") in ("Query", Query)
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def _calls(builder: Any) -> int:
    info = builder.cache_info()
    return int(info.hits + info.misses)


@dataclass
class Recorded:
    walk: Walk
    answers: dict[tuple[str, str], Answer]
    calls: list[tuple[Query, dict[str, Any]]]
    builders_used: dict[str, int]


@pytest.fixture(scope="module")
def uncached(
    var_dir: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> Iterator[tuple[TestClient, Runtime, StatementLog]]:
    """The app with the cache off, its statements logged."""
    runtime, log = logged_runtime(var_dir, pg_database, engine, CACHE_ENABLED="false")
    with TestClient(create_app(runtime=runtime)) as client:
        yield client, runtime, log
    runtime.close()


@pytest.fixture(scope="module")
def recorded(
    uncached: tuple[TestClient, Runtime, StatementLog],
    engine: Engine,
    demo_data: SeedReport,
) -> Iterator[Recorded]:
    """Every read route and page once (a suspended tenant among the others, and a command),
    with the statements and parameters they gave ``Reads``."""
    client, runtime, log = uncached
    home = demo_data.demo_tenant_id
    assert home is not None
    with engine.connect() as conn:
        suspended, status = conn.execute(
            sa.select(tenants.c.id, tenants.c.status)
            .where(tenants.c.id != home, tenants.c.status == "active")
            .order_by(tenants.c.name)
            .limit(1)
        ).one()
        agent = conn.execute(
            sa.select(tenant_agents.c.agent_id)
            .where(tenant_agents.c.tenant_id == home)
            .order_by(tenant_agents.c.agent_id)
            .limit(1)
        ).scalar_one()
    tokens = {
        "tenant": issue_token(runtime, "TENANT_ADMIN", home),
        "admin": issue_token(runtime, "INTERNAL_ADMIN"),
        "support": issue_token(runtime, "INTERNAL_SUPPORT"),
        "suspended": issue_token(runtime, "TENANT_USER", suspended),
    }
    created = client.post(
        "/internal/operations/commands",
        json={"command_type": "HEALTH_CHECK", "tenant_id": str(home)},
        headers={**auth(tokens["admin"]), "Idempotency-Key": f"reads-{uuid.uuid4().hex}"},
    )
    assert created.status_code == 201, created.text
    walk = Walk(home, suspended, agent, uuid.UUID(created.json()["command_id"]), tokens)

    recorder = Recorder()
    builders = query_builders()
    before = {name: _calls(builder) for name, builder in builders.items()}
    with engine.begin() as conn:
        conn.execute(tenants.update().where(tenants.c.id == suspended).values(status="suspended"))
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in ("all", "first", "one", "scalar"):
                patch.setattr(Reads, name, recorder.wrap(getattr(Reads, name)))
            answers = walk_all(client, walk, log)
        yield Recorded(
            walk,
            answers,
            recorder.calls,
            {name: _calls(builder) - before[name] for name, builder in builders.items()},
        )
    finally:
        with engine.begin() as conn:
            conn.execute(tenants.update().where(tenants.c.id == suspended).values(status=status))


def distinct_calls(recorded: Recorded) -> list[tuple[Query, dict[str, Any]]]:
    """The recorded statements with their parameters, each once, with the statements of this
    module's own (every column type, JSON) and the DynamoDB command store's
    (``TENANT_NAMES``: the command routes on AWS)."""
    seen: dict[tuple[int, str], tuple[Query, dict[str, Any]]] = {}
    extra: list[tuple[Query, dict[str, Any]]] = [
        (TYPED, {"not_status": "inactive", "before": datetime(2100, 1, 1, tzinfo=UTC)}),
        (TYPED, {"not_status": "inactive", "before": datetime(2000, 1, 1, tzinfo=UTC)}),  # none
        (DETAILS, {"limit": 25}),
        (CONFIGS, {"limit": 25}),
        (DIVIDE, {"by": 2}),
        (TENANT_NAMES, {"ids": [recorded.walk.home, recorded.walk.suspended, uuid.uuid4()]}),
        (TENANT_NAMES, {"ids": []}),
    ]
    for query, params in [*recorded.calls, *extra]:
        seen.setdefault((id(query), repr(sorted(params.items()))), (query, params))
    return list(seen.values())


def test_the_walk_uses_every_declared_statement(recorded: Recorded) -> None:
    """The routes and pages walked send every statement declared as a module constant and
    call every cached statement builder: the comparisons below cover them all."""
    used = {id(query) for query, _params in distinct_calls(recorded)}
    missing = [name for name, query in declared_queries().items() if id(query) not in used]
    assert missing == []
    assert recorded.builders_used, "no cached statement builder found"
    assert [name for name, calls in recorded.builders_used.items() if not calls] == []
    for name in ("TENANT_STATUS", "PERIOD_RANKINGS", "TOP_TENANTS", "AGENTS", "_GET"):
        assert any(n.endswith("." + name) for n in declared_queries()), name


def _types(rows: list[Any]) -> list[tuple[type, ...]]:
    return [tuple(type(value) for value in row) for row in rows]


# The one difference of types between the two drivers: asyncpg decodes a UUID as its own
# ``asyncpg.pgproto.pgproto.UUID``, a subclass of ``uuid.UUID`` (equal, same hash and text; but
# ``orjson`` refuses to encode it: ``test_uuids_of_the_read_path``).
ALLOWED_TYPE_DIFFERENCES = {(uuid.UUID, asyncpg.pgproto.pgproto.UUID)}


# Statements whose ORDER BY leaves ties (their services do not depend on the order of tied
# rows): their rows may come in another order on another plan, and are compared in any order.
PARTIALLY_ORDERED = {
    id(ACTIVE_BY_PLAN_AND_SEGMENT): "ordered by plan: the segments of a plan in any order",
    id(TENANT_NAMES): "no ORDER BY (names looked up by id)",
}


def _differences(expected: list[Any], got: list[Any], *, ordered: bool = True) -> list[str]:
    """Where ``got`` differs from ``expected`` (rows as tuples: values, then Python types; in
    any order unless ``ordered``)."""
    if not ordered:
        expected, got = (
            sorted(rows, key=lambda row: [str(v) for v in row]) for rows in (expected, got)
        )
    if [tuple(row) for row in expected] != [tuple(row) for row in got]:
        return [f"rows differ: {expected[:3]!r} != {got[:3]!r}"]
    return [
        f"row {i} column {j}: {a.__module__}.{a.__qualname__} != {b.__module__}.{b.__qualname__}"
        for i, (want, have) in enumerate(zip(_types(expected), _types(got), strict=True))
        for j, (a, b) in enumerate(zip(want, have, strict=True))
        if a is not b and (a, b) not in ALLOWED_TYPE_DIFFERENCES
    ][:3]


def test_every_statement_answers_the_same_three_ways(
    recorded: Recorded, settings: Settings, engine: Engine
) -> None:
    """Each statement (with the parameters a route gave it) on the synchronous connection of
    the write transactions (psycopg), alone through ``Reads``, and inside ``reads.gather``
    batches of several statements: the same rows, values and Python types."""
    calls = distinct_calls(recorded)
    assert len(calls) > 60
    with engine.connect() as conn:
        expected = [list(query.execute(conn, **params).all()) for query, params in calls]
    database, log = logged_database(settings, engine)

    async def alone(reads: Reads) -> list[list[Any]]:
        return [await reads.all(query, **params) for query, params in calls]

    lone = run_reads(database, alone)
    assert len(log) == len(calls) and not any(is_batch(sql) for sql in log.statements)
    assert log.statements == [query.sql for query, _params in calls]  # as it is, unwrapped

    async def batched(reads: Reads) -> list[list[Any]]:
        answers: list[list[Any]] = []
        for size in (5, 3):  # batches of various statements, in two different cuts
            for start in range(0, len(calls), size):
                chunk = calls[start : start + size]
                answers.extend(
                    await reads.gather(*(reads.all(query, **params) for query, params in chunk))
                )
        # and all of them in one statement
        answers.extend(await reads.gather(*(reads.all(query, **params) for query, params in calls)))
        return answers

    log.clear()
    answers = run_reads(database, batched)
    rounds = -(-len(calls) // 5) + -(-len(calls) // 3) + 1
    assert len(log) == rounds, "one statement per batch"
    assert is_batch(log.statements[-1])
    cuts = [answers[i * len(calls) : (i + 1) * len(calls)] for i in range(3)]

    empty = json_values = nulls = 0
    failures = []
    for index, (query, params) in enumerate(calls):
        want = expected[index]
        for way, got in (
            ("alone", lone[index]),
            *((f"batch {n}", c[index]) for n, c in enumerate(cuts)),
        ):
            ordered = id(query) not in PARTIALLY_ORDERED
            for difference in _differences(want, got, ordered=ordered):
                failures.append(f"{way}: {query.sql[:120]!r} {params}: {difference}")
        empty += not want
        flat = [value for row in want for value in row]
        nulls += any(value is None for value in flat)
        json_values += any(isinstance(value, dict | list) for value in flat)
    assert failures == []
    # the comparison saw every kind of answer and value
    assert empty >= 3 and nulls >= 10 and json_values >= 2
    kinds = {type(value) for rows in expected for row in rows for value in row}
    assert {uuid.UUID, Decimal, datetime, date, float, int, str, bool, dict} <= kinds, kinds


def test_uuids_of_the_read_path(settings: Settings, engine: Engine, demo_data: SeedReport) -> None:
    """The read path's UUIDs (asyncpg's own type, ``ALLOWED_TYPE_DIFFERENCES``) are
    ``uuid.UUID``s: equal to, hashed and printed as the synchronous path's; JSON answers encode
    them through pydantic (the routes' bytes are compared above), not ``orjson`` alone."""
    home = demo_data.demo_tenant_id
    assert home is not None
    read = run_reads(
        create_read_database(settings, engine),
        lambda reads: reads.scalar(TENANT_NAMES, ids=[home]),
    )
    assert isinstance(read, uuid.UUID)
    assert read == home and hash(read) == hash(home) and str(read) == str(home)
    assert {read: 1}[home] == 1


def test_rows_read_as_sqlalchemys(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    """A row of ``Reads`` is read as SQLAlchemy's: by name, by position, as a dict."""
    params = {"not_status": "inactive", "before": datetime(2100, 1, 1, tzinfo=UTC)}
    with engine.connect() as conn:
        seen = TYPED.execute(conn, **params).first()
    first = run_reads(create_read_database(settings, engine), lambda r: r.first(TYPED, **params))
    assert seen is not None and first is not None
    assert first._asdict() == dict(seen._mapping)
    for key in seen._mapping:
        assert getattr(first, key) == getattr(seen, key)
    assert first[0] == seen[0] and tuple(first) == tuple(seen)
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset().total_seconds() == 0
    assert isinstance(first.mrr_estimate, Decimal) and isinstance(first.mrr_float, float)


def test_first_one_and_scalar(settings: Settings, engine: Engine, demo_data: SeedReport) -> None:
    home, nobody = {"tenant_id": demo_data.demo_tenant_id}, {"tenant_id": uuid.uuid4()}
    many = {"not_status": "inactive", "before": datetime(2100, 1, 1, tzinfo=UTC)}

    async def read(reads: Reads) -> dict[str, Any]:
        found: dict[str, Any] = {
            "scalar": await reads.scalar(TENANT_STATUS, **home),
            "one": (await reads.one(TENANT_STATUS, **home)).status,
            "first": (await reads.first(TENANT_STATUS, **home)).status,
            "scalar of none": await reads.scalar(TENANT_STATUS, **nobody),
            "first of none": await reads.first(TENANT_STATUS, **nobody),
        }
        for name, call in (
            ("one of none", reads.one(TENANT_STATUS, **nobody)),
            ("one of many", reads.one(TYPED, **many)),
        ):
            try:
                await call
            except LookupError as exc:
                found[name] = str(exc)
        try:
            await reads.all(TENANT_STATUS)
        except TypeError as exc:  # a missing parameter is named
            found["missing"] = str(exc)
        found["after"] = await reads.scalar(TENANT_STATUS, **home)  # the session goes on
        return found

    found = run_reads(create_read_database(settings, engine), read)
    assert found["scalar"] == found["one"] == found["first"] == found["after"] == "active"
    assert found["scalar of none"] is None and found["first of none"] is None
    assert found["one of none"] == "expected one row, got 0"
    assert found["one of many"].startswith("expected one row, got ")
    assert "tenant_id" in found["missing"]


# -- (b) the routes answer the same bytes batched or not ---------------------------------------
async def _unbatched_gather(
    self: Reads, *reads: Awaitable[Any], return_exceptions: bool = False
) -> list[Any]:
    """``Reads.gather`` without its batching: the same reads run by ``asyncio.gather``, each
    statement then sent alone as it comes. It answers once every read is done, as a batch
    does (``asyncio.gather`` answers at the first failure while the other reads go on, past
    the end of their session: see ``test_a_failed_gather_leaves_no_read_behind``)."""
    results = await asyncio.gather(*reads, return_exceptions=True)
    if not return_exceptions:
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return list(results)


def test_every_route_and_page_answers_the_same_bytes_batched_or_not(
    recorded: Recorded, uncached: tuple[TestClient, Runtime, StatementLog]
) -> None:
    client, _runtime, log = uncached
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Reads, "gather", _unbatched_gather)
        unbatched = walk_all(client, recorded.walk, log)
    assert unbatched.keys() == recorded.answers.keys()
    gathered = 0
    for key, answer in recorded.answers.items():
        alone = unbatched[key]
        assert alone.status == answer.status, key
        assert alone.body == answer.body, key
        assert not any(is_batch(sql) for sql in alone.statements), key
        # batching sent the same statements, fewer round trips where there were several
        if any(is_batch(sql) for sql in answer.statements):
            gathered += 1
            assert len(answer.statements) < len(alone.statements), key
    assert gathered > 20


# -- (c) round trips ---------------------------------------------------------------------------
def expected_round_trips(path: str) -> int:
    """The round trips of a read route or page with the cache off: one, but where a statement
    needs another's answer."""
    if path.startswith("/internal/usage/overview?from="):
        return 2  # a custom range has no stored rankings: ranked on the read, after
    if path.startswith("/dashboard/usage?agent_id="):
        return 2  # one agent's usage: the agent is checked first (another tenant's: 404)
    if "?tab=incidents" in path:
        return 2  # the tenant's scope is resolved (its status read), then its incidents
    return 1


def in_nested_gathers(path: str) -> bool:
    """Routes and pages whose reads are a ``reads.gather`` inside a ``reads.gather`` (the
    tenant's status beside services that gather their own statements)."""
    return path == "/dashboard" or path.startswith(
        ("/dashboard?", "/dashboard/usage?period", "/tenant/usage?agent_id=")
    )


def test_each_route_reads_in_one_round_trip(recorded: Recorded) -> None:
    """With the cache off, a read route sends its statements (the tenant's status among them)
    in one round trip, but where a statement needs another's answer (the pages:
    tests/web/test_page_reads.py)."""
    counts = {
        (who, path): len(answer.statements)
        for (who, path), answer in recorded.answers.items()
        if not path.startswith(("/dashboard", "/company"))
    }
    assert len(counts) == len(recorded.walk.api())
    unexpected = {
        key: count
        for key, count in counts.items()
        if count != expected_round_trips(key[1]) and not in_nested_gathers(key[1])
    }
    assert unexpected == {}
    assert all(count <= 2 for key, count in counts.items() if in_nested_gathers(key[1]))


def test_a_gather_inside_a_gather_is_still_one_round_trip(recorded: Recorded) -> None:
    nested = {
        (who, path): len(answer.statements)
        for (who, path), answer in recorded.answers.items()
        if in_nested_gathers(path) and not path.startswith("/dashboard")
    }
    assert nested  # /tenant/usage?agent_id=... with the cache off (the pages: test_page_reads)
    assert nested == {key: expected_round_trips(key[1]) for key in nested}


def test_a_gather_inside_a_gather_is_one_statement(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    database, log = logged_database(settings, engine)

    async def service(reads: Reads) -> list[Any]:  # a service gathering its own statements
        return await reads.gather(reads.all(DIVIDE, by=2), reads.all(DIVIDE, by=4))

    async def read(reads: Reads) -> list[Any]:
        answers = await reads.gather(
            reads.scalar(TENANT_STATUS, tenant_id=demo_data.demo_tenant_id), service(reads)
        )
        await asyncio.sleep(0)
        return answers

    status, (half, quarter) = run_reads(database, read)
    assert (status, half[0][0], quarter[0][0]) == ("active", Decimal("0.5"), Decimal("0.25"))
    assert len(log) == 1 and is_batch(log.statements[0])


def test_a_batch_is_one_statement_and_a_lone_statement_is_sent_as_it_is(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    database, log = logged_database(settings, engine)
    home, nobody = demo_data.demo_tenant_id, uuid.uuid4()

    async def read(reads: Reads) -> tuple[Any, ...]:
        together = await reads.gather(
            reads.scalar(TENANT_STATUS, tenant_id=home),
            reads.scalar(TENANT_STATUS, tenant_id=nobody),  # the same statement, other values
            reads.all(DIVIDE, by=4),
            reads.all(DETAILS, limit=2),
        )
        await asyncio.sleep(0)  # the loggers run on the next turn of the loop
        in_batch = log.records
        lone = await reads.scalar(TENANT_STATUS, tenant_id=home)
        # statements issued one after the other inside a gather: one round trip each
        chained = await reads.gather(_chain(reads, home))
        await asyncio.sleep(0)
        return together, in_batch, lone, chained

    together, in_batch, lone, chained = run_reads(database, read)
    assert (together[0], together[1], lone) == ("active", None, "active")
    assert [tuple(row) for row in together[2]] == [(Decimal("0.25"),)]
    assert len(together[3]) == 2 and chained == [("active", Decimal("0.5"))]
    assert len(in_batch) == 1 and is_batch(in_batch[0].query)
    assert list(in_batch[0].args) == [home, nobody, 4, 2]
    records = log.records
    assert [r.query for r in records[1:]] == [TENANT_STATUS.sql, TENANT_STATUS.sql, DIVIDE.sql]


async def _chain(reads: Reads, home: uuid.UUID | None) -> tuple[Any, Any]:
    status = await reads.scalar(TENANT_STATUS, tenant_id=home)
    return status, await reads.scalar(DIVIDE, by=2)


# -- (d) errors --------------------------------------------------------------------------------
def test_a_sql_error_in_a_batch_reaches_every_statement_and_the_session_goes_on(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    database, log = logged_database(settings, engine)

    async def read(reads: Reads) -> tuple[list[Any], Any, list[Any]]:
        failed = await reads.gather(
            reads.scalar(TENANT_STATUS, tenant_id=demo_data.demo_tenant_id),
            reads.all(DIVIDE, by=0),
            reads.all(DETAILS, limit=1),
            return_exceptions=True,
        )
        after = await reads.scalar(DIVIDE, by=1)
        again = await reads.gather(reads.all(DIVIDE, by=2), reads.all(DETAILS, limit=1))
        return failed, after, again

    failed, after, again = run_reads(database, read)
    assert [type(result) for result in failed] == [asyncpg.DivisionByZeroError] * 3
    assert len({id(result) for result in failed}) == 1  # the batch's one error
    assert after == 1 and len(again[1]) == 1
    assert len(log) == 3  # the failed batch ran once, not again


def test_a_failed_gather_leaves_no_read_behind(settings: Settings, engine: Engine) -> None:
    """A service of a page fails before it reads (a validation, a not-found from Python)
    while another reads: the session ends with the failure, and the next session of the
    event loop gets a connection (one at a time: ``concurrency`` 1)."""
    database, _log = logged_database(settings, engine, concurrency=1)

    async def fails_at_once() -> None:
        raise ValueError("refused before reading")

    async def scenario() -> Any:
        try:
            with pytest.raises(ValueError):
                async with database.session() as reads:
                    await reads.gather(fails_at_once(), reads.scalar(DIVIDE, by=1))
            async with database.session() as reads:
                return await asyncio.wait_for(reads.scalar(DIVIDE, by=2), 5)
        finally:
            await asyncio.wait_for(database.close(), 5)

    assert in_thread(scenario) == Decimal("0.5")


def test_a_statement_timeout_is_unavailable_and_not_run_again(
    settings: Settings, engine: Engine
) -> None:
    database, log = logged_database(settings, engine)

    async def read(reads: Reads) -> tuple[type, float, Any]:
        await reads.scalar(STATEMENT_TIMEOUT, timeout="50ms")
        started = time.monotonic()
        try:
            await reads.all(SLEEP, seconds=1.0, tag=1)
            raise AssertionError("the statement was not cancelled")
        except DatabaseUnavailable as exc:
            error: type = type(exc.__cause__)
        took = time.monotonic() - started
        await asyncio.sleep(0)
        return error, took, await reads.all(SLEEP, seconds=0.0, tag=2)

    error, took, after = run_reads(database, read)
    assert error is asyncpg.QueryCanceledError
    assert took < 0.9  # cancelled at 50 ms, and once: not a second sleep
    sleeps = [r for r in log.records if r.query == SLEEP.sql]
    assert len(sleeps) == 2 and isinstance(sleeps[0].exception, asyncpg.QueryCanceledError)
    assert [tuple(row) for row in after] == [(1, 2)]  # the session's connection still answers


def test_a_connection_lost_between_statements_is_replaced_and_the_read_runs_again(
    settings: Settings, engine: Engine, demo_data: SeedReport
) -> None:
    name = f"opdash-lost-{uuid.uuid4().hex[:8]}"
    database, log = logged_database(settings, engine)
    named(database, name)

    async def read(reads: Reads) -> tuple[int, int, Any]:
        first = await reads.scalar(BACKEND)
        await asyncio.to_thread(terminate, engine, first)  # the server drops it meanwhile
        await asyncio.sleep(0.2)
        second = await reads.scalar(BACKEND)
        status = await reads.scalar(TENANT_STATUS, tenant_id=demo_data.demo_tenant_id)
        return first, second, status

    first, second, status = run_reads(database, read)
    assert first != second and status == "active"  # on a new connection
    # sent twice: the broken connection never got the second (asyncpg knew it was gone)
    assert [r.query for r in log.records].count(BACKEND.sql) == 2
    assert backends(engine, name) == []


def test_a_connection_lost_during_a_statement_is_replaced_and_the_read_runs_again(
    settings: Settings, engine: Engine
) -> None:
    name = f"opdash-lost-{uuid.uuid4().hex[:8]}"
    database, log = logged_database(settings, engine)
    named(database, name)

    async def read(reads: Reads) -> tuple[int, Any, int]:
        pid = await reads.scalar(BACKEND)

        async def kill_soon() -> None:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(terminate, engine, pid)

        killer = asyncio.ensure_future(kill_soon())
        rows = await reads.all(SLEEP, seconds=0.6, tag=7)
        await killer
        return pid, rows, await reads.scalar(BACKEND)

    before, rows, after = run_reads(database, read)
    assert [tuple(row) for row in rows] == [(1, 7)]
    assert after != before  # answered on a new connection
    # (asyncpg drops the loggers of a connection that broke: only the second run is logged)
    sleeps = [r for r in log.records if r.query == SLEEP.sql]
    assert len(sleeps) == 1 and sleeps[0].exception is None


def test_a_connection_lost_twice_is_unavailable(settings: Settings, engine: Engine) -> None:
    """Every connection dropped while the statement runs: run once more, then a 503."""
    name = f"opdash-lost-{uuid.uuid4().hex[:8]}"
    database, _log = logged_database(settings, engine)
    named(database, name)
    stop = threading.Event()
    dropped: set[int] = set()  # one connection per attempt

    def drop_every_connection() -> None:
        while not stop.is_set():
            for pid in backends(engine, name):
                terminate(engine, pid)
                dropped.add(pid)
            stop.wait(0.05)

    dropper = threading.Thread(target=drop_every_connection)
    dropper.start()
    try:
        with pytest.raises(DatabaseUnavailable):
            run_reads(database, lambda reads: reads.all(SLEEP, seconds=2.0, tag=1))
    finally:
        stop.set()
        dropper.join(10)
    assert len(dropped) == 2  # run once more, not twice more


def test_an_unreachable_server_is_unavailable_at_once(tmp_path: Path, pg_database: str) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    database = ReadDatabase(closed, schema="alquimista_platform", concurrency=2, connect_args={})

    async def read() -> tuple[type | None, float]:
        started = time.monotonic()
        try:
            async with database.session() as reads:
                await reads.scalar(DIVIDE, by=1)
        except DatabaseUnavailable as exc:
            return type(exc.__cause__), time.monotonic() - started
        finally:
            await database.close()
        return None, 0.0

    cause, took = in_thread(read)
    assert cause is not None and issubclass(cause, OSError)
    assert took < 5.0  # refused at once, not after a timeout

    # the app answers 503 with the error's body
    settings = make_settings(tmp_path, pg_database, CACHE_ENABLED="false")
    runtime = build_runtime(settings)
    runtime.reads = ReadDatabase(
        closed, schema="alquimista_platform", concurrency=1, connect_args={}
    )
    try:
        with TestClient(create_app(runtime=runtime)) as client:
            response = client.get(
                "/internal/tenants", headers=auth(issue_token(runtime, "INTERNAL_ADMIN"))
            )
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "SERVICE_UNAVAILABLE"
        assert response.headers["retry-after"] == "5"
    finally:
        runtime.close()


# -- (e) pools, gate, sessions -------------------------------------------------------------------
def test_sessions_use_generic_plans_and_the_schema(settings: Settings, engine: Engine) -> None:
    """Every session of a pooled connection sees the connection's own settings (generic plans,
    the schema), and giving the connection back costs no round trip: asyncpg's reset of a
    released connection is left out, as read sessions change no session state."""
    database, _log = logged_database(settings, engine)
    sent: list[str] = []
    database.query_loggers.append(lambda logged: sent.append(logged.query))

    async def twice() -> list[Any]:
        seen = []
        try:
            for _session in range(2):  # the second session reuses the first's connection
                async with database.session() as reads:
                    seen.append((await reads.one(SESSION_SETTINGS), await reads.scalar(BACKEND)))
                await asyncio.sleep(0)  # asyncpg logs a statement a turn of the loop later
        finally:
            await database.close()
        return seen

    (first, pid1), (second, pid2) = in_thread(twice)
    assert pid1 == pid2
    for row in (first, second):
        assert row.plans == "force_generic_plan"
        assert row.search_path == f'"{settings.db_schema}", public'
    assert not [sql for sql in sent if "RESET ALL" in sql or "pg_advisory_unlock_all" in sql]


def test_one_pool_per_event_loop(settings: Settings, engine: Engine) -> None:
    """Sessions on one event loop share its pool (the same connection, one at a time); another
    loop has a pool of its own; ``close`` closes the calling loop's only."""
    name = f"opdash-pools-{uuid.uuid4().hex[:8]}"
    database = named(create_read_database(settings, engine), name)
    database.concurrency = 1
    opened = threading.Event()
    release = threading.Event()
    held: dict[str, Any] = {}

    async def other_loop() -> None:
        held["pid"] = (await _pids(database, 2))[0]
        opened.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        await database.close()

    holder = threading.Thread(target=asyncio.run, args=(other_loop(),))
    holder.start()
    try:
        assert opened.wait(10)

        async def this_loop() -> tuple[list[int], list[int]]:
            mine = await _pids(database, 3)
            open_before = sorted(backends(engine, name))
            await database.close()
            return mine, open_before

        mine, open_before = in_thread(this_loop)
        assert len(set(mine)) == 1  # one connection on this loop, reused
        assert held["pid"] not in mine  # the other loop's pool is another
        assert open_before == sorted([mine[0], held["pid"]])
        assert _eventually(lambda: backends(engine, name) == [held["pid"]])  # closed: this one
    finally:
        release.set()
        holder.join(10)
    assert _eventually(lambda: backends(engine, name) == [])


async def _pids(database: ReadDatabase, sessions: int) -> list[int]:
    pids = []
    for _ in range(sessions):
        async with database.session() as reads:
            pids.append(await reads.scalar(BACKEND))
    return pids


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_the_gate_admits_concurrency_sessions_in_arrival_order(
    settings: Settings, engine: Engine
) -> None:
    """Eight sessions at once: ``concurrency`` of them hold a connection, the others wait
    their turn in the order they came, and every one answers."""

    def scenario(concurrency: int) -> tuple[list[int], int, list[Any]]:
        database, _log = logged_database(settings, engine, concurrency=concurrency)
        admitted: list[int] = []
        inside = most = 0

        async def session(i: int) -> Any:
            nonlocal inside, most
            async with database.session() as reads:
                await reads.scalar(DIVIDE, by=1)  # holds the gate from here to the end
                admitted.append(i)
                inside += 1
                most = max(most, inside)
                rows = await reads.all(SLEEP, seconds=0.05, tag=i)
                inside -= 1
                return tuple(rows[0])

        async def run() -> list[Any]:
            try:
                return list(await asyncio.gather(*(session(i) for i in range(8))))
            finally:
                await database.close()

        answers = in_thread(run)
        return admitted, most, answers

    admitted, most, answers = scenario(1)
    assert admitted == list(range(8)) and most == 1
    assert answers == [(1, i) for i in range(8)]
    admitted, most, answers = scenario(3)
    assert most == 3 and sorted(admitted) == list(range(8))
    assert answers == [(1, i) for i in range(8)]


def test_the_app_lifespan_closes_its_loops_pool(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    name = f"opdash-lifespan-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, pg_database, CACHE_ENABLED="false")
    runtime = build_runtime(settings, engine)
    named(runtime.reads, name)
    headers = auth(issue_token(runtime, "INTERNAL_ADMIN"))
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get(f"/tenant/me?tenant_id={demo_data.demo_tenant_id}", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["x-cache"] == "MISS"
        assert len(backends(engine, name)) == 1  # kept for the next request
    assert _eventually(lambda: backends(engine, name) == [])


# -- (f) the read cache: one computation per key at a time ----------------------------------------
def _cache_scenario(
    tmp_path: Path, pg_database: str, engine: Engine, scenario: Any, **overrides: str
) -> Any:
    """``scenario(cache, database)`` on an event loop of its own, with a Redis cache."""
    runtime = build_runtime(make_settings(tmp_path, pg_database, **overrides), engine)
    assert runtime.cache.backend_name == "redis"

    async def run() -> Any:
        try:
            return await scenario(runtime.cache, runtime.reads)
        finally:
            await runtime.reads.close()

    try:
        return in_thread(run)
    finally:
        runtime.cache.close()


class Lookups:
    """Counts the read cache's lookups that answered (``Cache.alookup``, wrapped on the
    instance): a scenario waits until every request of a burst has missed before the first
    computation ends (otherwise a late request may miss after the value was stored... or
    before, on a busy machine)."""

    def __init__(self, cache: Cache) -> None:
        self.done = 0
        self._changed = asyncio.Event()
        lookup = cache.alookup

        async def counted(*args: Any, **kwargs: Any) -> Any:
            try:
                return await lookup(*args, **kwargs)
            finally:
                self.done += 1
                self._changed.set()

        cache.alookup = counted  # type: ignore[method-assign]

    async def reach(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.done < count:
                self._changed.clear()
                await self._changed.wait()


async def _read_once(database: ReadDatabase, query: Query, **params: Any) -> Any:
    async with database.session() as reads:
        return await reads.scalar(query, **params)


def test_cache_misses_of_one_key_read_once(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """Eight requests miss the same key at once: one read, on the event loop, every request
    gets its value, and it is stored: the next one is a HIT."""
    key = CacheKey.build("billing_overview", "platform", {"period": f"30d-{uuid.uuid4()}"})
    threads: list[int] = []

    async def scenario(cache: Cache, database: ReadDatabase) -> tuple[int, Any, Any]:
        lookups = Lookups(cache)

        async def compute() -> int:
            threads.append(threading.get_ident())
            await lookups.reach(8)  # every request missed
            return int(await _read_once(database, SLEEP, seconds=0.05, tag=1))

        first = await asyncio.gather(
            *(cached_value(cache, key, compute, lambda n: b"%d" % n) for _ in range(8))
        )
        again = await cached_value(cache, key, compute, lambda n: b"%d" % n)
        return threading.get_ident(), first, again

    loop_thread, first, again = _cache_scenario(tmp_path, pg_database, engine, scenario)
    assert threads == [loop_thread]
    assert first == [(b"1", False)] * 8
    assert again == (b"1", True)


def test_a_failed_miss_reaches_its_waiters_and_is_not_stored(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    key = CacheKey.build("billing_overview", "platform", {"period": f"7d-{uuid.uuid4()}"})
    calls: list[int] = []

    async def scenario(cache: Cache, database: ReadDatabase) -> tuple[list[Any], Any]:
        lookups = Lookups(cache)

        async def compute() -> int:
            calls.append(1)
            await _read_once(database, SLEEP, seconds=0.05, tag=1)
            if len(calls) == 1:
                await lookups.reach(4)  # every request of the burst missed
                raise ValueError("first read fails")
            return 7

        failed = await asyncio.gather(
            *(cached_value(cache, key, compute, lambda n: b"%d" % n) for _ in range(4)),
            return_exceptions=True,
        )
        return failed, await cached_value(cache, key, compute, lambda n: b"%d" % n)

    failed, after = _cache_scenario(tmp_path, pg_database, engine, scenario)
    assert [type(result) for result in failed] == [ValueError] * 4
    assert after == (b"7", False)  # computed again, not a cached failure
    assert len(calls) == 2


def test_a_miss_whose_request_is_cancelled_is_computed_by_its_waiter(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """The request computing a key goes away (its client disconnected): the request waiting
    for the same key computes it instead of failing."""
    key = CacheKey.build("billing_overview", "platform", {"period": f"90d-{uuid.uuid4()}"})

    async def scenario(cache: Cache, database: ReadDatabase) -> tuple[bool, Any]:
        lookups = Lookups(cache)
        computing: list[str] = []

        async def compute() -> int:
            computing.append("leader" if not computing else "waiter")
            return int(await _read_once(database, SLEEP, seconds=0.2, tag=1))

        leader = asyncio.create_task(cached_value(cache, key, compute, b"%d".__mod__))
        await lookups.reach(1)  # the leader missed: it is reading
        waiter = asyncio.create_task(cached_value(cache, key, compute, b"%d".__mod__))
        await lookups.reach(2)  # the waiter missed: it waits for the leader's value
        assert computing == ["leader"]
        leader.cancel()
        result = await waiter
        assert computing == ["leader", "waiter"]
        return leader.cancelled(), result

    cancelled, result = _cache_scenario(tmp_path, pg_database, engine, scenario)
    assert cancelled
    assert result == (b"1", False)


def test_a_local_copy_computed_across_an_invalidation_is_not_kept(
    tmp_path: Path, pg_database: str, engine: Engine, demo_data: SeedReport
) -> None:
    """A miss computed while its key is invalidated is answered and stored in Redis as
    before, but this process keeps no local copy of it (it may predate the write)."""
    key = CacheKey.build("billing_overview", "platform", {"period": f"30d-{uuid.uuid4()}"})

    async def scenario(cache: Cache, database: ReadDatabase) -> tuple[Any, Any, Any]:
        async def compute() -> int:
            cache.invalidate_resource("billing_overview")  # a write lands meanwhile
            return int(await _read_once(database, DIVIDE, by=1)) * 3

        answer = await cached_value(cache, key, compute, b"%d".__mod__)
        full = key.render(cache.namespace)
        return answer, cache.local_copy(full), cache.backend.get(full)  # type: ignore[union-attr]

    answer, local, stored = _cache_scenario(
        tmp_path, pg_database, engine, scenario, CACHE_LOCAL_SECONDS="30"
    )
    assert answer == (b"3", False)
    assert local is None
    assert stored == b"3"
