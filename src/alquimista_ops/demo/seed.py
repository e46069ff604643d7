"""Deterministic demo data: tenants, agents, integrations, users, incidents and usage.

The same seed (and the same ``today``) always produces the same rows. Usage history is
written as daily rollups for older days and as raw ``agent_requests`` for the most recent
days, which are then rolled up by the real rollup (so the two always agree). Everything is
bulk loaded (COPY on PostgreSQL).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alquimista_ops.auth.service import create_local_user, setup_groups
from alquimista_ops.core.bulk import bulk_insert, bulk_load, copy_text
from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.schema import (
    SEGMENTS,
    agent_requests,
    agent_usage_totals,
    agents,
    auth_users,
    job_runs,
    operational_commands,
    operational_events,
    plans,
    platform_usage_totals,
    tenant_agents,
    tenant_integrations,
    tenant_usage_cumulative,
    tenant_usage_daily,
    tenant_usage_totals,
    tenant_users,
    tenants,
    usage_period_rankings,
    usage_period_snapshots,
)
from alquimista_ops.core.text import fold
from alquimista_ops.demo import catalogue
from alquimista_ops.tenants.cnpj import generate as generate_cnpj
from alquimista_ops.usage.rollup import recompute_agent_counters, rollup_range
from alquimista_ops.usage.totals import refresh_usage_totals

Progress = Callable[[str, int, int], None]

PLAN_MIX = (("starter", 0.40), ("professional", 0.30), ("business", 0.20), ("enterprise", 0.10))
# Typical daily executions of one agent on a weekday, by plan.
PLAN_DAILY_VOLUME = {"starter": 20, "professional": 60, "business": 150, "enterprise": 400}
WEEKDAY_FACTOR = np.array([1.0, 1.05, 1.08, 1.04, 0.95, 0.45, 0.30])  # Monday..Sunday

DEMO_ACCOUNTS = (
    ("INTERNAL_ADMIN", "admin@alquimista.ai", "Admin Alquimista", "admin-demo-123"),
    ("INTERNAL_SUPPORT", "suporte@alquimista.ai", "Suporte Alquimista", "suporte-demo-123"),
    ("TENANT_ADMIN", "gestor@{domain}", "Gestora Demo", "gestor-demo-123"),
    ("TENANT_USER", "usuario@{domain}", "Usuário Demo", "usuario-demo-123"),
)


@dataclass(frozen=True)
class SeedOptions:
    tenants: int = 50
    days: int = 90
    seed: int = 42
    raw_days: int = 2
    today: date | None = None


@dataclass
class SeedReport:
    counts: dict[str, int] = field(default_factory=dict)
    accounts: list[tuple[str, str, str]] = field(default_factory=list)
    demo_tenant_id: uuid.UUID | None = None


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _at(day: date, seconds: float) -> datetime:
    return datetime.combine(day, time(), UTC) + timedelta(seconds=seconds)


def is_empty(conn: Connection) -> bool:
    return conn.execute(sa.select(sa.func.count()).select_from(tenants)).scalar_one() == 0


DATA_TABLES = (
    usage_period_rankings,
    usage_period_snapshots,
    agent_usage_totals,
    platform_usage_totals,
    tenant_usage_cumulative,
    tenant_usage_totals,
    agent_requests,
    tenant_usage_daily,
    operational_commands,
    operational_events,
    tenant_integrations,
    tenant_agents,
    tenant_users,
    auth_users,
    job_runs,
    tenants,
)


def reset(conn: Connection) -> None:
    for table in DATA_TABLES:
        conn.execute(sa.delete(table))


def agent_id_for(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"alquimista-agent:{name}")


def seed_reference_data(conn: Connection) -> None:
    """Plans and the agent catalogue (idempotent)."""
    existing_plans = set(conn.execute(sa.select(plans.c.name)).scalars())
    for name, display, max_agents, max_users, max_requests, price in catalogue.PLANS:
        if name not in existing_plans:
            conn.execute(
                sa.insert(plans).values(
                    name=name,
                    display_name=display,
                    max_agents=max_agents,
                    max_users=max_users,
                    max_requests_per_month=max_requests,
                    price_monthly_brl=price,
                )
            )
    existing_agents = set(conn.execute(sa.select(agents.c.name)).scalars())
    for name, display, category, description, agent_price, _lat, _tok in catalogue.AGENTS:
        if name not in existing_agents:
            conn.execute(
                sa.insert(agents).values(
                    id=agent_id_for(name),
                    name=name,
                    display_name=display,
                    description=description,
                    category=category,
                    version="1.0.0",
                    status="active",
                    price_per_1k_tokens_usd=Decimal(agent_price),
                )
            )


def _company_name(rng: random.Random, segment: str, used: set[str]) -> str:
    kinds, cores = catalogue.SEGMENT_NAMES[segment]
    for _ in range(20):
        name = f"{rng.choice(kinds)} {rng.choice(cores)}"
        if rng.random() < 0.5:
            name += f" {rng.choice(catalogue.CITIES)}"
        name += f" {rng.choice(catalogue.LEGAL_SUFFIXES)}"
        if name not in used:
            used.add(name)
            return name
    name = f"{rng.choice(kinds)} {rng.choice(cores)} {len(used) + 1} Ltda"
    used.add(name)
    return name


def _domain(name: str) -> str:
    words = [
        w
        for w in fold(name).replace(".", "").split()
        if w not in {"ltda", "s.a", "me", "eireli", "sa"}
    ]
    return "".join(words[:3]) + ".com.br"


def seed(engine: Engine, options: SeedOptions, progress: Progress | None = None) -> SeedReport:
    """Load the demo data set into an empty database."""
    report = SeedReport()
    tell = progress or (lambda _stage, _done, _total: None)
    today = options.today or utctoday()
    yesterday = today - timedelta(days=1)
    period_start = today - timedelta(days=options.days)
    raw_days = max(0, min(options.raw_days, options.days))
    raw_start = today - timedelta(days=raw_days)
    rng = random.Random(options.seed)
    nrng = np.random.default_rng(options.seed)

    with engine.begin() as conn:
        setup_groups(conn)
        seed_reference_data(conn)
        agent_rows = list(
            conn.execute(
                sa.select(agents.c.id, agents.c.name, agents.c.price_per_1k_tokens_usd).order_by(
                    agents.c.name
                )
            )
        )
    agent_meta = {
        row.id: (float(row.price_per_1k_tokens_usd), _agent_profile(row.name)) for row in agent_rows
    }
    agent_ids = [row.id for row in agent_rows]
    plan_limits = {p[0]: p for p in catalogue.PLANS}

    # Tenants -----------------------------------------------------------------------------
    tell("tenants", 0, options.tenants)
    tenant_rows: list[dict[str, Any]] = []
    used_names: set[str] = set()
    used_cnpjs: set[str] = set()
    history_days = max(options.days, 30) * 2 + 180
    for index in range(options.tenants):
        segment = SEGMENTS[rng.randrange(len(SEGMENTS))]
        plan = rng.choices([p for p, _ in PLAN_MIX], [w for _, w in PLAN_MIX])[0]
        # 70% were clients before the period began, 30% joined during it.
        if rng.random() < 0.7 or index == 0:
            created_day = period_start - timedelta(days=rng.randint(1, history_days))
        else:
            created_day = period_start + timedelta(days=rng.randint(0, max(options.days - 1, 0)))
        roll = rng.random()
        status = "active"
        churned_at = None
        if index > 0:
            if roll < 0.07:
                status = "inactive"
                churn_from = max(created_day + timedelta(days=1), period_start)
                span = max((yesterday - churn_from).days, 0)
                churned_at = _at(
                    churn_from + timedelta(days=rng.randint(0, span)), rng.uniform(28_800, 64_800)
                )
            elif roll < 0.11:
                status = "suspended"
            elif roll < 0.18 and created_day > today - timedelta(days=30):
                status = "trial"
        price = plan_limits[plan][5]
        mrr = (
            Decimal("0.00")
            if status == "trial"
            else (price * Decimal(str(round(rng.uniform(0.9, 1.25), 2)))).quantize(Decimal("0.01"))
        )
        cnpj = generate_cnpj(rng)
        while cnpj in used_cnpjs:
            cnpj = generate_cnpj(rng)
        used_cnpjs.add(cnpj)
        name = _company_name(rng, segment, used_names)
        created_at = _at(created_day, rng.uniform(32_400, 64_800))
        tenant_rows.append(
            {
                "id": _uuid(rng),
                "name": name,
                "name_search": fold(name),
                "cnpj": cnpj,
                "segment": segment,
                "plan": plan,
                "status": status,
                "mrr_estimate": mrr,
                "created_at": created_at,
                "updated_at": churned_at or created_at,
                "churned_at": churned_at,
            }
        )
    columns = list(tenant_rows[0].keys()) if tenant_rows else []

    with engine.begin() as conn:
        report.counts["tenants"] = bulk_insert(
            conn, tenants, columns, (tuple(t[c] for c in columns) for t in tenant_rows)
        )
    tell("tenants", options.tenants, options.tenants)

    # Tenant agents, integrations, users, incidents ----------------------------------------
    ta_rows: list[tuple[Any, ...]] = []
    integration_rows: list[tuple[Any, ...]] = []
    user_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    usage_plan: list[tuple[dict[str, Any], uuid.UUID, date, date, float]] = []
    for tenant in tenant_rows:
        plan = tenant["plan"]
        max_agents = plan_limits[plan][2]
        n_agents = rng.randint(2, min(max_agents, 6))
        chosen = rng.sample(agent_ids, n_agents)
        created_day = tenant["created_at"].date()
        end_day = tenant["churned_at"].date() if tenant["churned_at"] else yesterday
        for agent_id in chosen:
            activated_day = created_day + timedelta(days=rng.randint(0, 20))
            roll = rng.random()
            status = "active"
            deactivated_at = None
            last_error = None
            if tenant["status"] == "inactive":
                status = "inactive"
                deactivated_at = tenant["churned_at"]
            elif roll < 0.08:
                status = "error"
                last_error = "Tempo limite excedido ao chamar o modelo"
            elif roll < 0.16:
                status = "inactive"
                deactivated_at = _at(
                    max(activated_day, today - timedelta(days=rng.randint(2, 60))), 43_200
                )
            activated_at = _at(activated_day, rng.uniform(32_400, 64_800))
            ta_rows.append(
                (
                    _uuid(rng),
                    tenant["id"],
                    agent_id,
                    status,
                    {"idioma": "pt-BR", "tom": rng.choice(["formal", "cordial", "descontraído"])},
                    activated_at,
                    deactivated_at,
                    0,
                    0,
                    last_error,
                    activated_at,
                    activated_at,
                )
            )
            usage_end = deactivated_at.date() if deactivated_at else end_day
            error_boost = 0.08 if status == "error" else 0.0
            usage_plan.append((tenant, agent_id, activated_day, usage_end, error_boost))
        for itype, iname in rng.sample(catalogue.INTEGRATIONS, rng.randint(1, 4)):
            roll = rng.random()
            istatus = "error" if roll < 0.12 else ("pending" if roll < 0.18 else "active")
            if tenant["status"] == "inactive":
                istatus = "inactive"
            last_sync = _at(today - timedelta(days=rng.randint(0, 3)), rng.uniform(0, 86_000))
            syncs = rng.randint(10, 5000)
            integration_rows.append(
                (
                    _uuid(rng),
                    tenant["id"],
                    itype,
                    iname,
                    istatus,
                    {
                        "webhook_url": f"https://hooks.{_domain(tenant['name'])}/{itype}",
                        "sync_interval_min": rng.choice([5, 15, 30, 60]),
                    },
                    None if istatus == "pending" else f"enc:v1:{rng.getrandbits(160):040x}",
                    None if istatus == "pending" else last_sync,
                    None
                    if istatus == "pending"
                    else ("failure" if istatus == "error" else "success"),
                    rng.choice(catalogue.INTEGRATION_ERRORS) if istatus == "error" else None,
                    syncs,
                    rng.randint(0, syncs // 20) + (5 if istatus == "error" else 0),
                    tenant["created_at"],
                    last_sync,
                )
            )
        domain = _domain(tenant["name"])
        used_emails: set[str] = set()
        # Leave room for the two demo accounts, so no tenant exceeds its plan's user limit.
        for u_index in range(rng.randint(2, max(2, min(8, plan_limits[plan][3] - 2)))):
            first = rng.choice(catalogue.FIRST_NAMES)
            last = rng.choice(catalogue.LAST_NAMES)
            email = f"{fold(first)}.{fold(last)}@{domain}"
            if email in used_emails:
                email = f"{fold(first)}.{fold(last)}{u_index}@{domain}"
            used_emails.add(email)
            role = "admin" if u_index == 0 else rng.choice(["user", "user", "viewer"])
            ustatus = "active" if rng.random() > 0.1 else "inactive"
            user_rows.append(
                (
                    _uuid(rng),
                    tenant["id"],
                    str(_uuid(rng)),
                    email,
                    f"{first} {last}",
                    role,
                    ustatus,
                    _at(today - timedelta(days=rng.randint(0, 30)), rng.uniform(0, 86_000)),
                    tenant["created_at"],
                    tenant["created_at"],
                )
            )
        for _ in range(rng.randint(0, 5)):
            severity, category, title, description = rng.choice(catalogue.INCIDENTS)
            agent_name = rng.choice(catalogue.AGENTS)[1]
            integ = rng.choice(catalogue.INTEGRATIONS)[1]
            created = _at(
                max(created_day, today - timedelta(days=rng.randint(0, 60))),
                rng.uniform(0, 86_000),
            )
            resolved = (
                created + timedelta(minutes=rng.randint(5, 600)) if rng.random() < 0.6 else None
            )
            event_rows.append(
                (
                    _uuid(rng),
                    f"{category}.incident",
                    category,
                    tenant["id"],
                    None,
                    None,
                    category,
                    None,
                    "alert",
                    "failure",
                    severity,
                    title.format(agent=agent_name, integration=integ),
                    description,
                    {"source": "monitor"},
                    None,
                    None,
                    created,
                    resolved,
                )
            )

    with engine.begin() as conn:
        report.counts["tenant_agents"] = bulk_insert(
            conn,
            tenant_agents,
            [
                "id",
                "tenant_id",
                "agent_id",
                "status",
                "config",
                "activated_at",
                "deactivated_at",
                "total_requests",
                "total_errors",
                "last_error",
                "created_at",
                "updated_at",
            ],
            ta_rows,
        )
        report.counts["tenant_integrations"] = bulk_insert(
            conn,
            tenant_integrations,
            [
                "id",
                "tenant_id",
                "integration_type",
                "integration_name",
                "status",
                "config",
                "credentials_encrypted",
                "last_sync_at",
                "last_sync_status",
                "last_error",
                "sync_count",
                "error_count",
                "created_at",
                "updated_at",
            ],
            integration_rows,
        )
        report.counts["tenant_users"] = bulk_insert(
            conn,
            tenant_users,
            [
                "id",
                "tenant_id",
                "cognito_sub",
                "email",
                "full_name",
                "role",
                "status",
                "last_login_at",
                "created_at",
                "updated_at",
            ],
            user_rows,
        )
        report.counts["operational_events"] = bulk_insert(
            conn,
            operational_events,
            [
                "id",
                "event_type",
                "event_category",
                "tenant_id",
                "user_id",
                "user_email",
                "resource_type",
                "resource_id",
                "action",
                "status",
                "severity",
                "title",
                "description",
                "details",
                "ip_address",
                "user_agent",
                "created_at",
                "resolved_at",
            ],
            event_rows,
        )

    # Usage --------------------------------------------------------------------------------
    # Each activated agent's history is drawn as numpy columns, then written as COPY text (one
    # formatted chunk per agent, no per-value conversion calls).
    total_plans = len(usage_plan)
    period_days = [period_start + timedelta(days=i) for i in range(options.days + 1)]
    period_iso = [day.isoformat() for day in period_days]

    def usage_blocks() -> Iterator[tuple[_DailyBlock | None, list[_RawBlock]]]:
        for done, (tenant, agent_id, first_day, last_day, error_boost) in enumerate(usage_plan):
            if done % 500 == 0:
                tell("usage", done, total_plans)
            start = max(first_day, period_start)
            end = min(last_day, yesterday)
            if end < start:
                continue
            price, (base_latency, base_tokens) = agent_meta[agent_id]
            n = (end - start).days + 1
            weekdays = (np.arange(n) + start.weekday()) % 7
            growth = 0.75 + 0.25 * (np.arange(n) + (start - period_start).days) / max(
                options.days, 1
            )
            volume = PLAN_DAILY_VOLUME[tenant["plan"]] * nrng.uniform(0.5, 1.5)
            counts = nrng.poisson(volume * WEEKDAY_FACTOR[weekdays] * growth)
            error_rate = nrng.uniform(0.005, 0.04) + error_boost
            failed = nrng.binomial(counts, min(error_rate, 0.9))
            latency = base_latency * nrng.lognormal(0.0, 0.12, n)
            tokens = np.rint(counts * base_tokens * nrng.lognormal(0.0, 0.1, n)).astype(np.int64)
            raw_from = (raw_start - start).days  # index of the first day kept as raw requests
            index = np.arange(n)
            used = counts > 0
            daily_idx = index[used & (index < raw_from)]
            daily: _DailyBlock | None = None
            if daily_idx.size:
                daily = _DailyBlock(
                    tenant_id=tenant["id"],
                    agent_id=agent_id,
                    price=price,
                    day_index=(daily_idx + (start - period_start).days).tolist(),
                    totals=counts[daily_idx].tolist(),
                    failed=failed[daily_idx].tolist(),
                    latency=latency[daily_idx].tolist(),
                    tokens=tokens[daily_idx].tolist(),
                )
            raws = [
                _raw_requests(
                    nrng,
                    tenant["id"],
                    agent_id,
                    start + timedelta(days=int(i)),
                    int(counts[i]),
                    int(failed[i]),
                    float(latency[i]),
                    int(tokens[i]),
                    options.seed,
                )
                for i in index[used & (index >= raw_from)]
            ]
            yield daily, raws
        tell("usage", total_plans, total_plans)

    with engine.begin() as conn:
        with bulk_load(conn, [tenant_usage_daily, agent_requests]):
            raw_text: list[str] = []

            def daily_text() -> Iterator[str]:
                for daily, raws in usage_blocks():
                    raw_text.extend(_raw_copy_text(raw) for raw in raws)
                    if daily is not None:
                        yield _daily_copy_text(daily, period_iso)

            report.counts["tenant_usage_daily"] = copy_text(
                conn, tenant_usage_daily, DAILY_COLUMNS, daily_text()
            )
            tell("raw requests", 0, 1)
            report.counts["agent_requests"] = copy_text(
                conn, agent_requests, tuple(agent_requests.c.keys()), raw_text
            )
            tell("raw requests", 1, 1)
            tell("indexes", 0, 1)  # rebuilt when bulk_load ends
        tell("indexes", 1, 1)
    tell("rollup", 0, 1)
    with engine.begin() as conn:
        if raw_days:
            result = rollup_range(conn, raw_start, yesterday)
            report.counts["tenant_usage_daily"] += result.rows_written
        # The rollup recomputes the pairs it touched; history loaded as rollups needs the rest.
        recompute_agent_counters(conn)
        refresh_usage_totals(conn, period_start, yesterday)
    tell("rollup", 1, 1)

    tell("accounts", 0, 1)
    with engine.begin() as conn:
        report.accounts, report.demo_tenant_id = create_demo_accounts(
            conn, tenant_rows, _at(today, 0)
        )
    tell("accounts", 1, 1)
    return report


DAILY_COLUMNS = (
    "tenant_id",
    "agent_id",
    "date",
    "total_requests",
    "successful_requests",
    "failed_requests",
    "avg_response_time_ms",
    "total_tokens_used",
    "total_cost_usd",
)


@dataclass(frozen=True, slots=True)
class _DailyBlock:
    """Daily rollup rows of one activated agent (days with at least one request)."""

    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    price: float
    day_index: list[int]  # days since the start of the period
    totals: list[int]
    failed: list[int]
    latency: list[float]
    tokens: list[int]


@dataclass(frozen=True, slots=True)
class _RawBlock:
    """The raw requests of one activated agent on one day."""

    prefix: str
    tenant_id: uuid.UUID
    agent_id: uuid.UUID
    day: date
    micros: list[int]  # microseconds since midnight, ascending
    latency: list[int]
    tokens: list[int]
    failed: list[bool]


def _daily_copy_text(block: _DailyBlock, iso_days: list[str]) -> str:
    # f"{x:.2f}" and round(x, 2) are both correctly rounded, so both paths store the same values.
    head = f"{block.tenant_id}\t{block.agent_id}\t"
    price = block.price
    return "".join(
        f"{head}{iso_days[day]}\t{total}\t{total - failed}\t{failed}\t{lat:.2f}\t{tok}\t"
        f"{tok * price / 1000.0:.6f}\n"
        for day, total, failed, lat, tok in zip(
            block.day_index, block.totals, block.failed, block.latency, block.tokens, strict=True
        )
    )


def _raw_copy_text(block: _RawBlock) -> str:
    head = f"\t{block.tenant_id}\t{block.agent_id}\t"
    day = block.day.isoformat()
    prefix = block.prefix
    return "".join(
        f"{prefix}{i:06d}{head}{'error' if bad else 'success'}\t{lat}\t{tok}\t"
        f"{day}T{us // 3_600_000_000:02d}:{us // 60_000_000 % 60:02d}:"
        f"{us // 1_000_000 % 60:02d}.{us % 1_000_000:06d}+00:00\t{day}\n"
        for i, (us, lat, tok, bad) in enumerate(
            zip(block.micros, block.latency, block.tokens, block.failed, strict=True)
        )
    )


def _agent_profile(name: str) -> tuple[float, float]:
    for entry in catalogue.AGENTS:
        if entry[0] == name:
            return float(entry[5]), float(entry[6])
    return 1000.0, 600.0


def _raw_requests(
    nrng: np.random.Generator,
    tenant_id: uuid.UUID,
    agent_id: uuid.UUID,
    day: date,
    total: int,
    failed: int,
    mean_latency: float,
    tokens: int,
    seed: int,
) -> _RawBlock:
    """``total`` executions on ``day``; their mean latency is close to ``mean_latency``."""
    seconds = np.sort(nrng.uniform(0, 86_399, total))
    latency = np.maximum(1, np.rint(nrng.gamma(4.0, mean_latency / 4.0, total))).astype(np.int64)
    weights = nrng.uniform(0.5, 1.5, total)
    per_request = np.floor(weights / weights.sum() * tokens).astype(np.int64)
    statuses = np.zeros(total, dtype=bool)
    statuses[nrng.choice(total, size=failed, replace=False)] = True
    return _RawBlock(
        prefix=f"demo{seed}-{tenant_id.hex[:12]}-{agent_id.hex[:8]}-{day:%Y%m%d}-",
        tenant_id=tenant_id,
        agent_id=agent_id,
        day=day,
        micros=np.rint(seconds * 1_000_000).astype(np.int64).tolist(),
        latency=latency.tolist(),
        tokens=per_request.tolist(),
        failed=statuses.tolist(),
    )


def create_demo_accounts(
    conn: Connection, tenant_rows: list[dict[str, Any]], created_at: datetime
) -> tuple[list[tuple[str, str, str]], uuid.UUID | None]:
    """Sign-in accounts, one per group; tenant accounts belong to the first active tenant.

    Ids derive from the e-mail and times are ``created_at``, so the rows are the same on every
    run (only the salted password hashes differ)."""
    demo_tenant = next((t for t in tenant_rows if t["status"] == "active"), None)
    accounts: list[tuple[str, str, str]] = []
    for group, email, name, password in DEMO_ACCOUNTS:
        tenant_id = None
        if group.startswith("TENANT"):
            if demo_tenant is None:
                continue
            tenant_id = demo_tenant["id"]
            email = email.format(domain=_domain(demo_tenant["name"]))
        create_local_user(
            conn,
            email=email,
            full_name=name,
            group=group,
            tenant_id=tenant_id,
            password=password,
            account_id=uuid.uuid5(uuid.NAMESPACE_URL, f"alquimista-demo-account:{email}"),
            tenant_user_id=uuid.uuid5(uuid.NAMESPACE_URL, f"alquimista-demo-tenant-user:{email}"),
            now=created_at,
        )
        accounts.append((group, email, password))
    return accounts, demo_tenant["id"] if demo_tenant else None


def demo_accounts(conn: Connection) -> list[tuple[str, str, str]]:
    """The demo accounts present in the database (group, e-mail, password)."""
    rows = conn.execute(sa.select(auth_users.c.group_name, auth_users.c.email)).all()
    passwords = {group: password for group, _e, _n, password in DEMO_ACCOUNTS}
    found = []
    for group, email, _name, _password in DEMO_ACCOUNTS:
        prefix = email.split("@")[0] + "@"
        for row in rows:
            if row.group_name == group and row.email.startswith(prefix):
                found.append((group, row.email, passwords[group]))
                break
    return found
