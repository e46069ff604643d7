"""The demo seed is deterministic and consistent, with valid CNPJs and one account per group."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from alquimista_ops.core.schema import GROUPS, metadata
from alquimista_ops.demo import seed as demo
from tests.conftest import SCHEMA, SEED_TODAY, auth, truncate_data
from tests.test_migrations import differences

# Columns whose value is the time of writing (server default now()) or a salted hash: the only
# things allowed to differ between two runs of the same seed.
VOLATILE = {
    ("tenant_usage_daily", "updated_at"),
    ("auth_users", "password_hash"),
}
RAW_DAYS = 2


def _normal(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return repr(value)


def table_digests(engine: Engine) -> dict[str, tuple[int, str]]:
    """Row count and sha256 of every table's content, ordered by primary key."""
    digests: dict[str, tuple[int, str]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE]
            query = sa.select(*columns).order_by(*table.primary_key.columns)
            digest = hashlib.sha256()
            count = 0
            for row in conn.execute(query):
                digest.update("\x1f".join(_normal(v) for v in row).encode())
                digest.update(b"\x1e")
                count += 1
            digests[table.name] = (count, digest.hexdigest())
    return digests


def options(seed: int = 11) -> demo.SeedOptions:
    return demo.SeedOptions(tenants=6, days=21, seed=seed, raw_days=RAW_DAYS, today=SEED_TODAY)


def test_seed_is_deterministic(clean_db: Engine) -> None:
    first_report = demo.seed(clean_db, options())
    first = table_digests(clean_db)
    truncate_data(clean_db)
    second_report = demo.seed(clean_db, options())
    second = table_digests(clean_db)
    assert first == second
    assert first_report.counts == second_report.counts
    assert first_report.accounts == second_report.accounts
    for table in ("tenants", "tenant_usage_daily", "agent_requests", "auth_users"):
        assert first[table][0] > 0, table

    truncate_data(clean_db)
    demo.seed(clean_db, options(seed=12))
    other = table_digests(clean_db)
    assert other["tenants"] != first["tenants"]
    assert other["tenant_usage_daily"] != first["tenant_usage_daily"]


def test_seed_is_consistent(clean_db: Engine) -> None:
    report = demo.seed(clean_db, options())
    raw_first = SEED_TODAY - timedelta(days=RAW_DAYS)
    raw_last = SEED_TODAY - timedelta(days=1)
    days = sa.bindparam("s", type_=sa.Date()), sa.bindparam("e", type_=sa.Date())
    with clean_db.connect() as conn:
        raw_span = conn.execute(sa.text("SELECT MIN(day), MAX(day) FROM agent_requests")).one()
        assert (str(raw_span[0]), str(raw_span[1])) == (str(raw_first), str(raw_last))
        # For the raw days, the rollup equals an independent GROUP BY over the raw requests.
        independent = conn.execute(
            sa.text(
                """
                SELECT r.tenant_id, r.agent_id, r.day, COUNT(*) AS total,
                       SUM(CASE WHEN r.status = 'success' THEN 1 ELSE 0 END) AS ok,
                       SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END) AS failed,
                       AVG(r.response_time_ms) AS avg_ms,
                       SUM(r.tokens_used) AS tokens,
                       MAX(a.price_per_1k_tokens_usd) AS price
                FROM agent_requests r JOIN agents a ON a.id = r.agent_id
                GROUP BY r.tenant_id, r.agent_id, r.day
                """
            )
        ).all()
        rollup = {
            (str(r.tenant_id), str(r.agent_id), str(r.date)): r
            for r in conn.execute(
                sa.text("SELECT * FROM tenant_usage_daily WHERE date BETWEEN :s AND :e").bindparams(
                    *days
                ),
                {"s": raw_first, "e": raw_last},
            )
        }
        assert len(independent) == len(rollup) > 0
        for row in independent:
            day = row.day if isinstance(row.day, str) else row.day.isoformat()
            got = rollup[(str(row.tenant_id), str(row.agent_id), day)]
            assert got.total_requests == row.total
            assert got.successful_requests == row.ok
            assert got.failed_requests == row.failed
            assert abs(Decimal(got.avg_response_time_ms) - Decimal(str(row.avg_ms))) <= Decimal(
                "0.005"
            )
            assert got.total_tokens_used == row.tokens
            cost = Decimal(row.tokens) * Decimal(str(row.price)) / 1000
            assert abs(Decimal(got.total_cost_usd) - cost) <= Decimal("0.0000005")

        # Older days are rollups only; every rollup row adds up.
        (bad,) = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM tenant_usage_daily "
                "WHERE total_requests <> successful_requests + failed_requests "
                "OR total_requests <= 0"
            )
        ).one()
        assert bad == 0

        # tenant_agents counters equal the rollup sums.
        mismatched = conn.execute(
            sa.text(
                """
                SELECT ta.id FROM tenant_agents ta
                LEFT JOIN (SELECT tenant_id, agent_id, SUM(total_requests) AS total,
                                  SUM(failed_requests) AS failed
                           FROM tenant_usage_daily GROUP BY tenant_id, agent_id) d
                  ON d.tenant_id = ta.tenant_id AND d.agent_id = ta.agent_id
                WHERE ta.total_requests <> COALESCE(d.total, 0)
                   OR ta.total_errors <> COALESCE(d.failed, 0)
                """
            )
        ).all()
        assert mismatched == []
        (used,) = conn.execute(
            sa.text("SELECT COUNT(*) FROM tenant_agents WHERE total_requests > 0")
        ).one()
        assert used > 0
    assert report.counts["tenant_usage_daily"] == _count(clean_db, "tenant_usage_daily")
    assert report.counts["agent_requests"] == _count(clean_db, "agent_requests")


def test_bulk_load_leaves_the_schema_as_migrated(clean_db: Engine) -> None:
    """The seed drops and rebuilds indexes and keys around its bulk load: all come back."""
    demo.seed(clean_db, options())
    assert differences(clean_db) == []
    schema = SCHEMA
    with clean_db.connect() as conn:
        inspector = sa.inspect(conn)
        fks = {
            fk["name"]: fk for fk in inspector.get_foreign_keys("tenant_usage_daily", schema=schema)
        }
        pk = inspector.get_pk_constraint("tenant_usage_daily", schema=schema)
    assert fks["fk_tenant_usage_daily_tenant_id_tenants"]["options"].get("ondelete") == "CASCADE"
    assert "fk_tenant_usage_daily_agent_id_agents" in fks
    assert pk["constrained_columns"] == ["tenant_id", "agent_id", "date"]
    # The rebuilt primary key still refuses a duplicate day.
    with pytest.raises(sa.exc.IntegrityError), clean_db.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO tenant_usage_daily (tenant_id, agent_id, date, total_requests, "
            "successful_requests, failed_requests, avg_response_time_ms, total_tokens_used, "
            "total_cost_usd) SELECT tenant_id, agent_id, date, 1, 1, 0, 1, 1, 0 "
            "FROM tenant_usage_daily LIMIT 1"
        )


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def cnpj_is_valid(cnpj: str) -> bool:
    """Independent check of the two CNPJ check digits (modulo 11)."""
    if len(cnpj) != 14 or not cnpj.isdigit() or len(set(cnpj)) == 1:
        return False
    digits = [int(c) for c in cnpj]
    for position in (12, 13):
        weights = list(range(position - 7, 1, -1)) + list(range(9, 1, -1))
        total = sum(d * w for d, w in zip(digits[:position], weights, strict=True))
        check = 0 if total % 11 < 2 else 11 - total % 11
        if digits[position] != check:
            return False
    return True


def test_cnpj_checker_knows_valid_and_invalid_numbers() -> None:
    assert cnpj_is_valid("11222333000181")
    assert cnpj_is_valid("11444777000161")
    assert not cnpj_is_valid("11222333000182")
    assert not cnpj_is_valid("11111111111111")


def test_seed_respects_plan_limits(clean_db: Engine) -> None:
    demo.seed(clean_db, demo.SeedOptions(tenants=50, days=3, seed=42, today=SEED_TODAY))
    with clean_db.connect() as conn:
        over = conn.execute(
            sa.text(
                """
                SELECT t.id FROM tenants t JOIN plans p ON p.name = t.plan
                WHERE (SELECT COUNT(*) FROM tenant_users u WHERE u.tenant_id = t.id
                       AND u.status = 'active') > p.max_users
                   OR (SELECT COUNT(*) FROM tenant_agents a WHERE a.tenant_id = t.id
                       AND a.status = 'active') > p.max_agents
                """
            )
        ).all()
    assert over == []


def test_seed_data_is_valid_and_has_one_account_per_group(
    clean_db: Engine, client: TestClient
) -> None:
    report = demo.seed(clean_db, options())
    with clean_db.connect() as conn:
        cnpjs = [str(v) for v in conn.execute(sa.text("SELECT cnpj FROM tenants")).scalars()]
        assert len(cnpjs) == 6
        assert all(cnpj_is_valid(c) for c in cnpjs), cnpjs
        assert len(set(cnpjs)) == len(cnpjs)
        accounts = conn.execute(
            sa.text("SELECT id, email, group_name, tenant_id FROM auth_users ORDER BY email")
        ).all()
        tenant_links = {
            str(r.cognito_sub): r
            for r in conn.execute(sa.text("SELECT cognito_sub, tenant_id, role FROM tenant_users"))
        }
    assert sorted(a.group_name for a in accounts) == sorted(GROUPS)
    assert [g for g, _e, _p in report.accounts] == list(GROUPS)
    for account in accounts:
        if account.group_name.startswith("TENANT"):
            assert str(account.tenant_id) == str(report.demo_tenant_id)
            link = tenant_links[str(uuid.UUID(str(account.id)))]
            assert str(link.tenant_id) == str(report.demo_tenant_id)
            assert link.role == ("admin" if account.group_name == "TENANT_ADMIN" else "user")
        else:
            assert account.tenant_id is None
    # Each printed account signs in and reads its tenant.
    for group, email, password in report.accounts:
        response = client.post("/auth/token", data={"username": email, "password": password})
        assert response.status_code == 200, (group, response.text)
        params = {} if group.startswith("TENANT") else {"tenant_id": str(report.demo_tenant_id)}
        me = client.get("/tenant/me", params=params, headers=auth(response.json()["id_token"]))
        assert me.status_code == 200
        assert me.json()["id"] == str(report.demo_tenant_id)
    with clean_db.connect() as conn:
        assert demo.demo_accounts(conn) == report.accounts
