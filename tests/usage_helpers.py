"""Helpers of the usage pipeline tests: tenants with activated agents, and an independent
computation of the daily rollup in Python (Decimal arithmetic)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.schema import (
    agents,
    tenant_agents,
    tenant_usage_cumulative,
    tenant_usage_daily,
    tenants,
)


def make_tenant(conn: Connection, n: int, agent_ids: list[uuid.UUID]) -> uuid.UUID:
    tenant_id = uuid.uuid4()
    conn.execute(
        sa.insert(tenants).values(
            id=tenant_id,
            name=f"Usage Test {n} {tenant_id.hex[:6]}",
            name_search=f"usage test {n}",
            cnpj=f"{uuid.uuid4().int % 10**14:014d}",
            segment="tecnologia",
            plan="business",
            status="active",
        )
    )
    for agent_id in agent_ids:
        conn.execute(
            sa.insert(tenant_agents).values(
                id=uuid.uuid4(), tenant_id=tenant_id, agent_id=agent_id, status="active"
            )
        )
    return tenant_id


def agent_prices(conn: Connection) -> dict[uuid.UUID, Decimal]:
    return {
        row.id: Decimal(str(row.price_per_1k_tokens_usd))
        for row in conn.execute(sa.select(agents.c.id, agents.c.price_per_1k_tokens_usd))
    }


@dataclass(frozen=True)
class Req:
    request_id: str
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    status: str
    response_time_ms: int
    tokens_used: int
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "tenant_id": str(self.tenant_id),
            "agent_id": str(self.agent_id),
            "status": self.status,
            "response_time_ms": self.response_time_ms,
            "tokens_used": self.tokens_used,
            "created_at": self.created_at.isoformat(),
        }


def expected_rollup(
    requests: list[Req], prices: dict[uuid.UUID, Decimal]
) -> dict[tuple[uuid.UUID, uuid.UUID, date], tuple[Any, ...]]:
    """(tenant, agent, day) -> (total, ok, failed, avg ms, tokens, cost), independently."""
    groups: dict[tuple[uuid.UUID, uuid.UUID, date], list[Req]] = defaultdict(list)
    for r in requests:
        groups[(r.tenant_id, r.agent_id, r.created_at.date())].append(r)
    out = {}
    for key, items in groups.items():
        total = len(items)
        failed = sum(1 for r in items if r.status == "error")
        avg = (Decimal(sum(r.response_time_ms for r in items)) / total).quantize(
            Decimal("0.01"), ROUND_HALF_UP
        )
        tokens = sum(r.tokens_used for r in items)
        cost = (Decimal(tokens) * prices[key[1]] / 1000).quantize(
            Decimal("0.000001"), ROUND_HALF_UP
        )
        out[key] = (total, total - failed, failed, avg, tokens, cost)
    return out


def stored_rollup(conn: Connection) -> dict[tuple[uuid.UUID, uuid.UUID, date], tuple[Any, ...]]:
    u = tenant_usage_daily
    return {
        (row.tenant_id, row.agent_id, row.date): (
            int(row.total_requests),
            int(row.successful_requests),
            int(row.failed_requests),
            Decimal(str(row.avg_response_time_ms)).quantize(Decimal("0.01")),
            int(row.total_tokens_used),
            Decimal(str(row.total_cost_usd)).quantize(Decimal("0.000001")),
        )
        for row in conn.execute(sa.select(u))
    }


def stored_counters(conn: Connection) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[Any, ...]]:
    t = tenant_agents
    return {
        (row.tenant_id, row.agent_id): (
            int(row.total_requests),
            int(row.total_errors),
            row.last_used_at,
        )
        for row in conn.execute(
            sa.select(
                t.c.tenant_id, t.c.agent_id, t.c.total_requests, t.c.total_errors, t.c.last_used_at
            )
        )
    }


def assert_cumulative_matches_rollup(conn: Connection) -> None:
    """``tenant_usage_cumulative`` holds, per tenant, the prefix sums of ``tenant_usage_daily``
    for every day from the tenant's first usage day through the last day of the rollup (rows
    before the first usage day, if any, are zero), and nothing after that last day."""
    daily: dict[uuid.UUID, dict[date, list[Any]]] = {}
    for row in conn.execute(
        sa.select(
            tenant_usage_daily.c.tenant_id,
            tenant_usage_daily.c.date,
            tenant_usage_daily.c.total_requests,
            tenant_usage_daily.c.successful_requests,
            tenant_usage_daily.c.failed_requests,
            tenant_usage_daily.c.avg_response_time_ms,
            tenant_usage_daily.c.total_tokens_used,
            tenant_usage_daily.c.total_cost_usd,
        )
    ):
        sums = daily.setdefault(row.tenant_id, {}).setdefault(
            row.date, [0, 0, 0, Decimal(0), 0, Decimal(0)]
        )
        sums[0] += row.total_requests
        sums[1] += row.successful_requests
        sums[2] += row.failed_requests
        sums[3] += Decimal(str(row.avg_response_time_ms)) * row.total_requests
        sums[4] += row.total_tokens_used
        sums[5] += Decimal(str(row.total_cost_usd))
    c = tenant_usage_cumulative
    stored = {
        (r.tenant_id, r.date): r
        for r in conn.execute(sa.select(c).order_by(c.c.tenant_id, c.c.date))
    }
    last = max((d for days in daily.values() for d in days), default=None)
    assert all(day <= last for _t, day in stored) if last else not stored
    for tenant_id, days in daily.items():
        running = [0, 0, 0, Decimal(0), 0, Decimal(0)]
        day = min(days)
        assert last is not None
        while day <= last:
            for i, value in enumerate(days.get(day, [0, 0, 0, 0, 0, 0])):
                running[i] += value
            row = stored.get((tenant_id, day))
            assert row is not None, (tenant_id, day)
            assert (row.total_requests, row.successful_requests, row.failed_requests) == tuple(
                running[:3]
            ), (tenant_id, day)
            assert row.total_tokens_used == running[4]
            assert float(row.response_ms_weighted) == pytest.approx(float(running[3]), abs=0.01)
            assert float(row.total_cost_usd) == pytest.approx(float(running[5]), abs=1e-6)
            day += timedelta(days=1)
    for (tenant_id, day), row in stored.items():
        first = min(daily[tenant_id]) if tenant_id in daily else None
        if first is None or day < first:
            assert row.total_requests == 0 and float(row.total_cost_usd) == 0
