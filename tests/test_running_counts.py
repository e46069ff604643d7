"""``tenant_totals``, ``agent_deployments`` (migration 0008's triggers), ``tenant_counts``
(0009's) and ``open_incidents`` (0010's) stay equal to what they count, through any mix of
writes; and the billing figures read from them equal the same figures
computed from the tenants themselves."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.billing import queries as billing_queries
from alquimista_ops.billing import service as billing_service
from alquimista_ops.core.params import resolve_period
from alquimista_ops.core.schema import (
    INCIDENT_SEVERITIES,
    SEGMENTS,
    SEVERITIES,
    TENANT_AGENT_STATUSES,
    TENANT_STATUSES,
    USER_STATUSES,
    agent_deployments,
    agents,
    open_incidents,
    operational_events,
    plans,
    tenant_agents,
    tenant_counts,
    tenant_totals,
    tenant_users,
    tenants,
)
from alquimista_ops.incidents import queries as incident_queries
from alquimista_ops.runtime import Runtime
from tests.conftest import SEED_TODAY, run_reads, truncate_data

NOW = datetime.combine(SEED_TODAY, datetime.min.time(), UTC)


@pytest.fixture
def database(clean_db: Engine) -> Engine:
    return clean_db


Counts = tuple[dict[tuple[Any, ...], tuple[int, int]], dict[Any, int], dict[Any, tuple[int, int]]]


def _counted(conn: Connection) -> Counts:
    """What the triggers keep (rows at 0 left out)."""
    kept = {
        (r.plan, r.segment, r.status, bool(r.churned)): (int(r.tenants), int(r.mrr_cents))
        for r in conn.execute(sa.select(tenant_totals))
        if r.tenants or r.mrr_cents
    }
    deployed = {
        r.agent_id: int(r.active) for r in conn.execute(sa.select(agent_deployments)) if r.active
    }
    per_tenant = {
        r.tenant_id: (int(r.active_agents), int(r.active_users))
        for r in conn.execute(sa.select(tenant_counts))
        if r.active_agents or r.active_users
    }
    return kept, deployed, per_tenant


def _from_rows(conn: Connection) -> Counts:
    """The same sums from the rows they count."""
    totals: dict[tuple[Any, ...], tuple[int, int]] = {}
    for r in conn.execute(sa.select(tenants)):
        key = (r.plan, r.segment, r.status, r.churned_at is not None)
        count, cents = totals.get(key, (0, 0))
        totals[key] = (count + 1, cents + int(Decimal(r.mrr_estimate) * 100))
    deployed: dict[Any, int] = {}
    per_tenant: dict[Any, tuple[int, int]] = {}
    for r in conn.execute(sa.select(tenant_agents).where(tenant_agents.c.status == "active")):
        deployed[r.agent_id] = deployed.get(r.agent_id, 0) + 1
        active_agents, active_users = per_tenant.get(r.tenant_id, (0, 0))
        per_tenant[r.tenant_id] = (active_agents + 1, active_users)
    for r in conn.execute(sa.select(tenant_users).where(tenant_users.c.status == "active")):
        active_agents, active_users = per_tenant.get(r.tenant_id, (0, 0))
        per_tenant[r.tenant_id] = (active_agents, active_users + 1)
    return totals, deployed, per_tenant


def _new_tenant(rng: random.Random, plan_names: list[str]) -> dict[str, Any]:
    status = rng.choice(TENANT_STATUSES)
    created = NOW - timedelta(days=rng.randint(0, 400), minutes=rng.randint(0, 1440))
    churned = created + timedelta(days=rng.randint(0, 30)) if rng.random() < 0.3 else None
    name = f"Tenant {uuid.uuid4().hex[:8]}"
    return {
        "id": uuid.uuid4(),
        "name": name,
        "name_search": name.lower(),
        "cnpj": f"{rng.randrange(10**14):014d}",
        "segment": rng.choice(SEGMENTS),
        "plan": rng.choice(plan_names),
        "status": status,
        "mrr_estimate": Decimal(rng.randint(0, 900_000)) / 100,
        "created_at": created,
        "churned_at": churned,
    }


def _write_at_random(conn: Connection, rng: random.Random, rounds: int) -> None:
    plan_names = list(conn.execute(sa.select(plans.c.name)).scalars())
    agent_ids = list(conn.execute(sa.select(agents.c.id)).scalars())
    for _ in range(rounds):
        ids = list(conn.execute(sa.select(tenants.c.id)).scalars())
        activations = list(conn.execute(sa.select(tenant_agents.c.id)).scalars())
        users = list(conn.execute(sa.select(tenant_users.c.id)).scalars())
        action = rng.random()
        if action < 0.3 or not ids:
            tenant = _new_tenant(rng, plan_names)
            conn.execute(sa.insert(tenants).values(**tenant))
            for _user in range(rng.randint(0, 3)):
                email = f"{uuid.uuid4().hex[:10]}@example.com"
                conn.execute(
                    sa.insert(tenant_users).values(
                        id=uuid.uuid4(),
                        tenant_id=tenant["id"],
                        cognito_sub=uuid.uuid4().hex,
                        email=email,
                        full_name="User",
                        status=rng.choice(USER_STATUSES),
                    )
                )
            for agent_id in rng.sample(agent_ids, rng.randint(0, 3)):
                conn.execute(
                    sa.insert(tenant_agents).values(
                        id=uuid.uuid4(),
                        tenant_id=tenant["id"],
                        agent_id=agent_id,
                        status=rng.choice(TENANT_AGENT_STATUSES),
                    )
                )
        elif action < 0.6:
            target = rng.choice(ids)
            changes: dict[str, Any] = rng.choice(
                [
                    {"status": rng.choice(TENANT_STATUSES)},
                    {"plan": rng.choice(plan_names), "segment": rng.choice(SEGMENTS)},
                    {"mrr_estimate": Decimal(rng.randint(0, 900_000)) / 100},
                    {"churned_at": None if rng.random() < 0.5 else NOW - timedelta(days=3)},
                    {"name": "renamed only"},  # a column the counts do not depend on
                ]
            )
            conn.execute(sa.update(tenants).where(tenants.c.id == target).values(**changes))
        elif action < 0.8 and activations:
            target = rng.choice(activations)
            change = rng.choice(
                [{"status": rng.choice(TENANT_AGENT_STATUSES)}, {"total_requests": 5}]
            )
            conn.execute(
                sa.update(tenant_agents).where(tenant_agents.c.id == target).values(**change)
            )
        elif action < 0.85 and activations:
            target = rng.choice(activations)
            conn.execute(sa.delete(tenant_agents).where(tenant_agents.c.id == target))
        elif action < 0.93 and users:
            target = rng.choice(users)
            if rng.random() < 0.6:
                status = rng.choice(USER_STATUSES)
                conn.execute(
                    sa.update(tenant_users).where(tenant_users.c.id == target).values(status=status)
                )
            else:
                conn.execute(sa.delete(tenant_users).where(tenant_users.c.id == target))
        else:  # a tenant with its activations (ON DELETE CASCADE)
            conn.execute(sa.delete(tenants).where(tenants.c.id == rng.choice(ids)))


def _rollback_changes_nothing(
    database: Engine, counted: Callable[[Connection], Any], write: Callable[[Connection], None]
) -> None:
    """A write rolled back leaves the counts as they were."""
    with database.connect() as conn:
        before = counted(conn)
    with database.connect() as conn, conn.begin() as transaction:
        write(conn)
        transaction.rollback()
    with database.connect() as conn:
        assert counted(conn) == before


def test_running_counts_follow_every_write(database: Engine) -> None:
    rng = random.Random(8)
    for _batch in range(6):
        with database.begin() as conn:
            _write_at_random(conn, rng, 40)
        with database.connect() as conn:
            counted = _counted(conn)
            assert counted[0] and counted[2], "the writes left tenants with active rows"
            assert counted == _from_rows(conn)

    _rollback_changes_nothing(database, _counted, lambda conn: _write_at_random(conn, rng, 20))

    # emptying the tables (TRUNCATE) empties the counts
    truncate_data(database)
    with database.connect() as conn:
        assert _counted(conn) == ({}, {}, {})


def _paying_at(conn: Connection, instant: datetime) -> Decimal:
    """The MRR of the tenants paying at ``instant``, from the rows (``billing.queries``)."""
    paying = sa.and_(
        billing_queries.PAYING,
        tenants.c.created_at < instant,
        sa.or_(tenants.c.churned_at.is_(None), tenants.c.churned_at >= instant),
    )
    total = conn.execute(sa.select(sa.func.sum(tenants.c.mrr_estimate)).where(paying)).scalar()
    return Decimal(str(total or 0)).quantize(Decimal("0.01"))


def test_billing_figures_from_the_counts_equal_the_rows(database: Engine, runtime: Runtime) -> None:
    rng = random.Random(80)
    with database.begin() as conn:
        _write_at_random(conn, rng, 150)
    with database.connect() as conn:
        for label in ("7d", "30d", "90d"):
            period = resolve_period(label, None, None, today=SEED_TODAY)
            start = datetime.combine(period.start, datetime.min.time(), UTC)
            figures = run_reads(
                runtime,
                lambda reads, period=period: billing_service.billing_overview(reads, period),
            )
            assert Decimal(str(figures["mrr_at_period_start"])) == _paying_at(conn, start)
            active = sa.select(sa.func.count(), sa.func.sum(tenants.c.mrr_estimate)).where(
                tenants.c.status == "active"
            )
            count, mrr = conn.execute(active).one()
            assert figures["active_tenants"] == count
            assert Decimal(str(figures["total_mrr"])) == Decimal(str(mrr or 0)).quantize(
                Decimal("0.01")
            )
            by_plan = dict(
                conn.execute(
                    sa.select(tenants.c.plan, sa.func.count())
                    .where(tenants.c.status == "active")
                    .group_by(tenants.c.plan)
                ).all()
            )
            shown = {row["plan"]: row["tenants"] for row in figures["by_plan"] if row["tenants"]}
            assert shown == by_plan


def _open_counted(conn: Connection) -> dict[str, int]:
    return {r.severity: int(r.open) for r in conn.execute(sa.select(open_incidents)) if r.open}


def _open_from_rows(conn: Connection) -> dict[str, int]:
    e = operational_events
    rows = conn.execute(
        sa.select(e.c.severity, sa.func.count())
        .where(e.c.severity.in_(INCIDENT_SEVERITIES), e.c.resolved_at.is_(None))
        .group_by(e.c.severity)
    )
    return {severity: int(count) for severity, count in rows}


def _write_events_at_random(conn: Connection, rng: random.Random, rounds: int) -> None:
    e = operational_events
    tenant_ids = [None, *conn.execute(sa.select(tenants.c.id)).scalars()]
    for _ in range(rounds):
        ids = list(conn.execute(sa.select(e.c.id)).scalars())
        action = rng.random()
        if action < 0.45 or not ids:
            conn.execute(
                sa.insert(e).values(
                    id=uuid.uuid4(),
                    event_type="incident",
                    event_category="system",
                    tenant_id=rng.choice(tenant_ids),
                    severity=rng.choice(SEVERITIES),
                    title="event",
                    created_at=NOW,
                    resolved_at=None if rng.random() < 0.6 else NOW,
                )
            )
        elif action < 0.85:
            changes: dict[str, Any] = rng.choice(
                [
                    {"resolved_at": NOW},
                    {"resolved_at": None},
                    {"severity": rng.choice(SEVERITIES)},
                    {"title": "retitled only"},  # a column the counts do not depend on
                ]
            )
            conn.execute(sa.update(e).where(e.c.id == rng.choice(ids)).values(**changes))
        elif action < 0.95:
            conn.execute(sa.delete(e).where(e.c.id == rng.choice(ids)))
        elif len(tenant_ids) > 1:  # a tenant with its events (ON DELETE CASCADE)
            gone = rng.choice(tenant_ids[1:])
            conn.execute(sa.delete(tenants).where(tenants.c.id == gone))
            tenant_ids.remove(gone)


def test_open_incidents_follow_every_write(database: Engine) -> None:
    rng = random.Random(10)
    with database.begin() as conn:
        _write_at_random(conn, rng, 30)  # some tenants for the events
    for _batch in range(5):
        with database.begin() as conn:
            _write_events_at_random(conn, rng, 60)
        with database.connect() as conn:
            counted = _open_counted(conn)
            assert counted, "the writes left open incidents"
            assert counted == _open_from_rows(conn)
            shown = incident_queries.OPEN_COUNTERS.execute(conn).one()
            assert shown.open == sum(counted.values())
            assert shown.critical_open == counted.get("critical", 0)
    _rollback_changes_nothing(
        database, _open_counted, lambda conn: _write_events_at_random(conn, rng, 20)
    )
    truncate_data(database)
    with database.connect() as conn:
        assert _open_counted(conn) == {}
        assert tuple(incident_queries.OPEN_COUNTERS.execute(conn).one()) == (0, 0)
