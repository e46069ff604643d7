"""Staff routes on the seeded data set: contracts, filters, search, sorting, pages, true totals,
query counts (no N+1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.schema import tenants
from alquimista_ops.core.text import fold
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.tenants.cnpj import format_cnpj
from tests.conftest import SCHEMA, auth

LIST_FIELDS = {
    "id",
    "name",
    "cnpj",
    "segment",
    "plan",
    "status",
    "mrr_estimate",
    "created_at",
    "active_agents",
    "active_users",
    "requests_last_30_days",
}


@pytest.fixture(scope="module")
def admin(demo_data: SeedReport, runtime: Any) -> dict[str, str]:
    from tests.conftest import issue_token

    return auth(issue_token(runtime, "INTERNAL_ADMIN"))


def _all_tenants(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(tenants)))


def test_list_defaults_to_active_with_true_total(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    rows = _all_tenants(engine)
    active = [r for r in rows if r.status == "active"]
    body = client.get("/internal/tenants", headers=admin).json()
    assert body["total"] == len(active)
    assert (body["limit"], body["offset"]) == (50, 0)
    assert {t["id"] for t in body["tenants"]} == {str(r.id) for r in active}
    assert set(body["tenants"][0]) == LIST_FIELDS
    names = [fold(t["name"]) for t in body["tenants"]]
    assert names == sorted(names)

    page = client.get("/internal/tenants?status=all&limit=3&offset=2", headers=admin).json()
    assert page["total"] == len(rows)
    assert len(page["tenants"]) == 3
    everything = client.get("/internal/tenants?status=all&limit=200", headers=admin).json()
    assert [t["id"] for t in everything["tenants"][2:5]] == [t["id"] for t in page["tenants"]]
    beyond = client.get("/internal/tenants?status=all&offset=500", headers=admin).json()
    assert beyond["tenants"] == [] and beyond["total"] == len(rows)


def test_list_counters_match_sql(client: TestClient, admin: dict[str, str], engine: Engine) -> None:
    since = utctoday() - timedelta(days=29)
    with engine.connect() as conn:
        expected = {
            str(r.id): (int(r.a), int(r.u), int(r.q))
            for r in conn.execute(
                sa.text(
                    """
                    SELECT t.id,
                      (SELECT COUNT(*) FROM tenant_agents a
                        WHERE a.tenant_id = t.id AND a.status = 'active') AS a,
                      (SELECT COUNT(*) FROM tenant_users u
                        WHERE u.tenant_id = t.id AND u.status = 'active') AS u,
                      (SELECT COALESCE(SUM(d.total_requests), 0) FROM tenant_usage_daily d
                        WHERE d.tenant_id = t.id AND d.date >= :since) AS q
                    FROM tenants t
                    """
                ).bindparams(sa.bindparam("since", type_=sa.Date())),
                {"since": since},
            )
        }
    body = client.get("/internal/tenants?status=all&limit=200", headers=admin).json()
    got = {
        t["id"]: (t["active_agents"], t["active_users"], t["requests_last_30_days"])
        for t in body["tenants"]
    }
    assert got == expected
    assert any(v[2] > 0 for v in got.values())


@pytest.mark.parametrize("sort_by", ["name", "created_at", "mrr_estimate"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting(client: TestClient, admin: dict[str, str], sort_by: str, order: str) -> None:
    body = client.get(
        f"/internal/tenants?status=all&sort_by={sort_by}&sort_order={order}&limit=200",
        headers=admin,
    ).json()
    key = {
        "name": lambda t: fold(t["name"]),
        "created_at": lambda t: t["created_at"],
        "mrr_estimate": lambda t: t["mrr_estimate"],
    }[sort_by]
    values = [key(t) for t in body["tenants"]]
    assert values == sorted(values, reverse=order == "desc")


def test_filters(client: TestClient, admin: dict[str, str], engine: Engine) -> None:
    rows = _all_tenants(engine)
    sample = rows[0]
    for field in ("plan", "segment"):
        value = getattr(sample, field)
        body = client.get(
            f"/internal/tenants?status=all&{field}={value}&limit=200", headers=admin
        ).json()
        assert body["total"] == sum(1 for r in rows if getattr(r, field) == value)
        assert all(t[field] == value for t in body["tenants"])
    for status in ("active", "trial", "inactive", "suspended"):
        body = client.get(f"/internal/tenants?status={status}", headers=admin).json()
        assert body["total"] == sum(1 for r in rows if r.status == status)


def test_search_name_is_case_and_accent_insensitive(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    row = next(r for r in _all_tenants(engine) if r.name != fold(r.name))
    word = max(row.name.split(), key=len)
    variants = {word.upper(), fold(word), word.lower()}
    for variant in variants:
        body = client.get(
            "/internal/tenants", params={"search": variant, "status": "all"}, headers=admin
        ).json()
        assert str(row.id) in {t["id"] for t in body["tenants"]}, variant
        assert all(fold(word) in fold(t["name"]) for t in body["tenants"]) or body["total"] >= 1


def test_search_cnpj_with_and_without_punctuation(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    row = _all_tenants(engine)[3]
    for term in (row.cnpj, format_cnpj(row.cnpj), format_cnpj(row.cnpj)[:10]):
        body = client.get(
            "/internal/tenants", params={"search": term, "status": "all"}, headers=admin
        ).json()
        assert str(row.id) in {t["id"] for t in body["tenants"]}, term
    assert body["tenants"][0]["cnpj"] == format_cnpj(row.cnpj) or body["total"] > 1


def _search_terms(rows: list[Any]) -> list[str]:
    """Terms of every length class: one and two characters (no trigram: the unindexed form),
    three or more in a row (the trigram index's form), words too short each, no match."""
    name = min((r.name_search for r in rows), key=len)
    longest = max(name.split(), key=len)
    return [name[0], name[:2], longest[:3], longest, name, f"{longest[0]} {longest[1]}", "zzqx"]


def test_search_matches_exactly_the_names_that_contain_the_term(
    client: TestClient, admin: dict[str, str], engine: Engine
) -> None:
    rows = _all_tenants(engine)
    for term in _search_terms(rows):
        expected = {str(r.id) for r in rows if fold(term) in r.name_search}
        body = client.get(
            "/internal/tenants",
            params={"search": term, "status": "all", "limit": 200},
            headers=admin,
        ).json()
        assert body["total"] == len(expected), term
        assert {t["id"] for t in body["tenants"]} == expected, term


def test_only_terms_with_a_trigram_can_use_the_trigram_index(engine: Engine) -> None:
    """Migration 0011's index serves ``name_search LIKE`` on a term with three letters or
    digits in a row; shorter terms are matched in a form no index serves (reading the index
    whole would cost more than reading the table). Checked on the statement's generic plan,
    the read sessions' plan, with sequential scans priced out of the planner's choice."""
    from sqlalchemy.dialects import postgresql

    from alquimista_ops.tenants import internal_queries as queries

    def plan(term: str) -> str:
        filters = queries.list_filter("all", None, None, fold(term), None)
        statement = queries._page_statement("name", False, filters.shape)
        compiled = statement.statement.compile(dialect=postgresql.psycopg.dialect())
        given = {**filters.params, "limit": 50, "offset": 0, "before": utctoday()}
        sql, params = str(compiled), compiled.construct_params(given)
        with engine.connect() as conn:
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql("SET enable_seqscan = off")
            lines = conn.exec_driver_sql("EXPLAIN " + sql, params).scalars().all()
            conn.rollback()
        return "\n".join(lines)

    with engine.connect() as conn:
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("tenants", schema=SCHEMA)}
    assert "ix_tenants_name_search_trgm" in indexes
    assert "ix_tenants_name_search_trgm" in plan("clinica")
    for short in ("c", "cl", "a b"):
        assert "ix_tenants_name_search_trgm" not in plan(short), short


@pytest.mark.parametrize("term", ["O'Brien", 'say "hi"', "100%", "a_b"])
def test_search_with_quotes_is_just_searched(
    client: TestClient, admin: dict[str, str], term: str
) -> None:
    response = client.get("/internal/tenants", params={"search": term}, headers=admin)
    if term in ("100%", "a_b"):
        assert response.status_code == 400
        assert response.json()["details"]["field"] == "search"
    else:
        assert response.status_code == 200
        assert response.json()["total"] == 0


def test_detail(client: TestClient, admin: dict[str, str], demo_data: SeedReport) -> None:
    tenant_id = demo_data.demo_tenant_id
    body = client.get(f"/internal/tenants/{tenant_id}", headers=admin).json()
    assert set(body) == {
        "tenant",
        "users",
        "agents",
        "integrations",
        "usage_summary",
        "recent_incidents",
    }
    assert body["tenant"]["id"] == str(tenant_id)
    assert body["users"] and body["agents"] and body["integrations"]
    assert len(body["recent_incidents"]) <= 5
    assert all("credentials" not in str(i).lower() for i in body["integrations"])
    summary = body["usage_summary"]
    assert summary["requests_last_7_days"] <= summary["requests_last_30_days"]
    assert 0 <= summary["success_rate_last_30_days"] <= 100


def test_detail_unknown_and_malformed(client: TestClient, admin: dict[str, str]) -> None:
    missing = client.get(f"/internal/tenants/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"] == "NOT_FOUND"
    agents = client.get(f"/internal/tenants/{uuid.uuid4()}/agents", headers=admin)
    assert agents.status_code == 404
    bad = client.get("/internal/tenants/not-a-uuid", headers=admin)
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field"] == "tenant_id"


def test_tenant_agents_internal(
    client: TestClient, admin: dict[str, str], demo_data: SeedReport, engine: Engine
) -> None:
    tenant_id = demo_data.demo_tenant_id
    body = client.get(f"/internal/tenants/{tenant_id}/agents", headers=admin).json()
    with engine.connect() as conn:
        expected = {
            str(r.agent_id): (int(r.total), int(r.failed))
            for r in conn.execute(
                sa.text(
                    "SELECT agent_id, SUM(total_requests) AS total, SUM(failed_requests) AS failed"
                    " FROM tenant_usage_daily WHERE tenant_id = :t GROUP BY agent_id"
                ),
                {"t": tenant_id},
            )
        }
    assert body["agents"]
    for agent in body["agents"]:
        assert "config" in agent and "deactivated_at" in agent
        stats = agent["usage_stats"]
        total, failed = expected.get(agent["id"], (0, 0))
        assert (stats["total_requests"], stats["failed_requests"]) == (total, failed)


def test_tenant_agents_internal_of_a_tenant_without_agents(
    client: TestClient, admin: dict[str, str], demo_data: SeedReport, engine: Engine
) -> None:
    """An existing tenant with no agent is an empty list (the statement's agent-less row),
    not a 404."""
    tenant_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tenants).values(
                id=tenant_id,
                name="Sem Agentes Ltda",
                name_search=fold("Sem Agentes Ltda"),
                cnpj="11222333000181",
                segment="saude",
                plan="starter",
                status="active",
                mrr_estimate=0,
            )
        )
    try:
        response = client.get(f"/internal/tenants/{tenant_id}/agents", headers=admin)
        assert response.status_code == 200, response.text
        assert response.json() == {"tenant_id": str(tenant_id), "agents": []}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.delete(tenants).where(tenants.c.id == tenant_id))


@contextmanager
def count_queries(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


@pytest.mark.parametrize(
    "path",
    [
        "/internal/tenants?status=all&limit={n}",
        "/internal/tenants/{tenant}",
        "/internal/tenants/{tenant}/agents",
        "/internal/usage/overview?period=30d",
        "/internal/billing/overview?period=90d",
    ],
)
def test_query_count_does_not_grow_with_rows(
    client: TestClient,
    admin: dict[str, str],
    engine: Engine,
    runtime: Any,
    demo_data: SeedReport,
    path: str,
) -> None:
    counts = []
    for n in (1, 200):
        runtime.cache.invalidate_all()
        with count_queries(engine) as statements:
            url = path.format(n=n, tenant=demo_data.demo_tenant_id)
            assert client.get(url, headers=admin).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 10, counts
