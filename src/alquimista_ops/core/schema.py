"""The database schema: every table of the product, in one SQLAlchemy MetaData.

Feature packages import the tables they read from here; migrations are checked against this
metadata by the test suite (``tests/test_migrations.py``).
"""

from __future__ import annotations

from typing import Literal, get_args

import sqlalchemy as sa

from alquimista_ops.core.types import JSONType, UTCDateTime, UUIDType

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Enumerations (check constraints are generated from these tuples).
PLANS = ("starter", "professional", "business", "enterprise")
SEGMENTS = ("saude", "educacao", "varejo", "servicos", "tecnologia", "outro")
TENANT_STATUSES = ("active", "trial", "inactive", "suspended")
AGENT_STATUSES = ("active", "beta", "deprecated")
USER_ROLES = ("admin", "user", "viewer")
USER_STATUSES = ("active", "inactive", "suspended")
TENANT_AGENT_STATUSES = ("active", "inactive", "error")
INTEGRATION_TYPES = ("whatsapp", "email", "crm", "calendar", "payment", "erp", "slack", "webhook")
INTEGRATION_STATUSES = ("active", "inactive", "error", "pending")
SYNC_STATUSES = ("success", "failure")
REQUEST_STATUSES = ("success", "error")
EVENT_CATEGORIES = ("auth", "tenant", "agent", "integration", "command", "system")
EVENT_STATUSES = ("success", "failure", "pending")
SEVERITIES = ("info", "warning", "error", "critical")
# An incident is an operational event of severity warning or worse.
INCIDENT_SEVERITIES = ("warning", "error", "critical")
INCIDENT_PREDICATE = "severity IN ({})".format(", ".join(f"'{s}'" for s in INCIDENT_SEVERITIES))
OPEN_INCIDENT_PREDICATE = f"{INCIDENT_PREDICATE} AND resolved_at IS NULL"
CommandType = Literal[
    "HEALTH_CHECK",
    "RESTART_AGENT",
    "RESET_TOKEN",
    "REPROCESS_QUEUE",
    "PAUSE_AGENT",
    "SUSPEND_TENANT",
    "REACTIVATE_TENANT",
    "RECOMPUTE_USAGE",
    "CLEAR_CACHE",
]
CommandStatus = Literal["PENDING", "RUNNING", "SUCCESS", "ERROR", "CANCELLED"]
COMMAND_TYPES: tuple[str, ...] = get_args(CommandType)
COMMAND_STATUSES: tuple[str, ...] = get_args(CommandStatus)
GROUPS = ("INTERNAL_ADMIN", "INTERNAL_SUPPORT", "TENANT_ADMIN", "TENANT_USER")
INTERNAL_GROUPS = ("INTERNAL_ADMIN", "INTERNAL_SUPPORT")
TENANT_GROUPS = ("TENANT_ADMIN", "TENANT_USER")


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> sa.CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=name or column)


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    ]


plans = sa.Table(
    "plans",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("display_name", sa.String(64), nullable=False),
    sa.Column("max_agents", sa.Integer(), nullable=False),
    sa.Column("max_users", sa.Integer(), nullable=False),
    sa.Column("max_requests_per_month", sa.BigInteger(), nullable=False),
    sa.Column("price_monthly_brl", sa.Numeric(12, 2), nullable=False),
    *_timestamps(),
    one_of("name", PLANS),
    sa.CheckConstraint("max_agents >= 0 AND max_users >= 0", name="limits_non_negative"),
    sa.CheckConstraint("max_requests_per_month >= 0", name="requests_non_negative"),
    sa.CheckConstraint("price_monthly_brl >= 0", name="price_non_negative"),
)

# Indexes that exist only where the database can have them, left out when the models are
# compared with a database: ``ix_tenants_name_search_trgm`` (migration 0011), pg_trgm's trigram
# index of the tenants' folded names, for the tenant search, on PostgreSQL with the extension.
OPTIONAL_INDEXES = frozenset({"ix_tenants_name_search_trgm"})


def compared(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's ``include_object`` for comparing the models with a database."""
    if type_ == "table" and name == "alembic_version":
        return False
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    # Lower-case, accent-free copy of the name for case- and accent-insensitive search.
    sa.Column("name_search", sa.String(200), nullable=False),
    sa.Column("cnpj", sa.String(14), nullable=False, unique=True),
    sa.Column("segment", sa.String(32), nullable=False),
    sa.Column("plan", sa.String(32), sa.ForeignKey("plans.name"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("mrr_estimate", sa.Numeric(12, 2), nullable=False, server_default="0"),
    *_timestamps(),
    sa.Column("churned_at", UTCDateTime(), nullable=True),
    one_of("segment", SEGMENTS),
    one_of("status", TENANT_STATUSES),
    sa.CheckConstraint("length(cnpj) = 14", name="cnpj_length"),
    sa.CheckConstraint("mrr_estimate >= 0", name="mrr_non_negative"),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "plan"),
    sa.Index(None, "segment"),
    sa.Index(None, "name_search"),
    sa.Index(None, "churned_at"),
    # Migration 0008: the paying MRR at a period's start and the new tenants of a period read
    # the tenants created since then only.
    sa.Index(None, "created_at"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("version", sa.String(32), nullable=False, server_default="1.0.0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("price_per_1k_tokens_usd", sa.Numeric(10, 6), nullable=False),
    *_timestamps(),
    one_of("status", AGENT_STATUSES),
    sa.CheckConstraint("price_per_1k_tokens_usd >= 0", name="price_non_negative"),
)

tenant_users = sa.Table(
    "tenant_users",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column(
        "tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("cognito_sub", sa.String(64), nullable=False, unique=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False, server_default="user"),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("last_login_at", UTCDateTime(), nullable=True),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "email"),
    one_of("role", USER_ROLES),
    one_of("status", USER_STATUSES),
)

tenant_agents = sa.Table(
    "tenant_agents",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column(
        "tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("agent_id", UUIDType, sa.ForeignKey("agents.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="active"),
    sa.Column("config", JSONType, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("activated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("deactivated_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("total_requests", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("total_errors", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("last_restart_at", UTCDateTime(), nullable=True),
    *_timestamps(),
    sa.UniqueConstraint("tenant_id", "agent_id"),
    one_of("status", TENANT_AGENT_STATUSES),
    sa.CheckConstraint("total_requests >= 0 AND total_errors >= 0", name="counters_non_negative"),
    sa.Index(None, "agent_id"),
    # Migration 0004: counting active activations (per agent, per platform) reads this narrow
    # index only, not the wide rows (configuration JSON).
    sa.Index(None, "status", "agent_id"),
)

tenant_integrations = sa.Table(
    "tenant_integrations",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column(
        "tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("integration_type", sa.String(32), nullable=False),
    sa.Column("integration_name", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("config", JSONType, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("credentials_encrypted", sa.Text(), nullable=True),
    sa.Column("last_sync_at", UTCDateTime(), nullable=True),
    sa.Column("last_sync_status", sa.String(16), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("sync_count", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("error_count", sa.BigInteger(), nullable=False, server_default="0"),
    *_timestamps(),
    one_of("integration_type", INTEGRATION_TYPES),
    one_of("status", INTEGRATION_STATUSES),
    sa.CheckConstraint(
        "last_sync_status IS NULL OR last_sync_status IN ('success', 'failure')",
        name="last_sync_status",
    ),
    sa.Index(None, "tenant_id", "status"),
)

# Raw usage: one row per agent execution, reported by the platform. High volume and append-only:
# tenant and agent are validated at ingestion rather than by foreign keys, and ``day`` (the UTC
# date of created_at) is stored so that the daily rollup never converts timestamps.
agent_requests = sa.Table(
    "agent_requests",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", UUIDType, nullable=False),
    sa.Column("agent_id", UUIDType, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("response_time_ms", sa.Integer(), nullable=False),
    sa.Column("tokens_used", sa.Integer(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("day", sa.Date(), nullable=False),
    one_of("status", REQUEST_STATUSES),
    sa.CheckConstraint("response_time_ms >= 0 AND tokens_used >= 0", name="measures_non_negative"),
    sa.Index(None, "day", "tenant_id", "agent_id"),
    # Migration 0003: no (tenant_id, created_at) index; no query reads raw rows by
    # tenant (figures come from the rollup) and each index slows ingestion of the largest table.
)

tenant_usage_daily = sa.Table(
    "tenant_usage_daily",
    metadata,
    sa.Column(
        "tenant_id",
        UUIDType,
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("agent_id", UUIDType, sa.ForeignKey("agents.id"), primary_key=True),
    sa.Column("date", sa.Date(), primary_key=True),
    sa.Column("total_requests", sa.BigInteger(), nullable=False),
    sa.Column("successful_requests", sa.BigInteger(), nullable=False),
    sa.Column("failed_requests", sa.BigInteger(), nullable=False),
    sa.Column("avg_response_time_ms", sa.Numeric(12, 2), nullable=False),
    sa.Column("total_tokens_used", sa.BigInteger(), nullable=False),
    sa.Column("total_cost_usd", sa.Numeric(16, 6), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(
        "total_requests = successful_requests + failed_requests", name="totals_add_up"
    ),
    sa.CheckConstraint("successful_requests >= 0 AND failed_requests >= 0", name="non_negative"),
    sa.Index(None, "date"),
)

operational_events = sa.Table(
    "operational_events",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column("event_type", sa.String(64), nullable=False),
    sa.Column("event_category", sa.String(16), nullable=False),
    sa.Column(
        "tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("user_id", sa.String(64), nullable=True),
    sa.Column("user_email", sa.String(254), nullable=True),
    sa.Column("resource_type", sa.String(64), nullable=True),
    sa.Column("resource_id", sa.String(64), nullable=True),
    sa.Column("action", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="success"),
    sa.Column("severity", sa.String(16), nullable=False, server_default="info"),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("details", JSONType, nullable=True),
    sa.Column("ip_address", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", UTCDateTime(), nullable=True),
    one_of("event_category", EVENT_CATEGORIES),
    one_of("status", EVENT_STATUSES),
    one_of("severity", SEVERITIES),
    sa.Index(None, "tenant_id", "created_at"),
    sa.Index(None, "event_category", "created_at"),
    sa.Index(None, "severity", "created_at"),
    # The incident rows only, in time order: the latest incidents of every tenant (staff
    # landing page) are read from the index end instead of sorting them all, and the platform's
    # incident counters (open, resolved, critical open) from the index alone.
    sa.Index(
        "ix_operational_events_incidents_created_at",
        "created_at",
        "id",
        postgresql_include=["severity", "resolved_at"],
        postgresql_where=sa.text(INCIDENT_PREDICATE),
    ),
    # The open incidents by severity: the staff landing page counts them (open, critical open)
    # from this index alone, however many resolved incidents and other events have piled up.
    sa.Index(
        "ix_operational_events_open_incidents",
        "severity",
        postgresql_where=sa.text(OPEN_INCIDENT_PREDICATE),
    ),
)

operational_commands = sa.Table(
    "operational_commands",
    metadata,
    sa.Column("command_id", UUIDType, primary_key=True),
    sa.Column("command_type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="PENDING"),
    sa.Column(
        "tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("parameters", JSONType, nullable=False, server_default=sa.text("'{}'")),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_by_email", sa.String(254), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("completed_at", UTCDateTime(), nullable=True),
    sa.Column("output", JSONType, nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer(), nullable=False, server_default="5"),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.Column("idempotency_key", sa.String(128), nullable=True),
    sa.Column("request_hash", sa.String(64), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    one_of("command_type", COMMAND_TYPES),
    one_of("status", COMMAND_STATUSES),
    sa.CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_bounds"),
    sa.UniqueConstraint("created_by", "idempotency_key"),
    sa.Index(None, "tenant_id", "created_at"),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "created_at"),
)

# Built-in identity provider (AUTH_MODE=local): local accounts with hashed passwords.
auth_users = sa.Table(
    "auth_users",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column("email", sa.String(254), nullable=False, unique=True),
    sa.Column("full_name", sa.String(200), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("group_name", sa.String(32), nullable=False),
    sa.Column(
        "tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    *_timestamps(),
    one_of("group_name", GROUPS),
    sa.CheckConstraint(
        "(group_name IN ('INTERNAL_ADMIN', 'INTERNAL_SUPPORT') AND tenant_id IS NULL) OR "
        "(group_name IN ('TENANT_ADMIN', 'TENANT_USER') AND tenant_id IS NOT NULL)",
        name="tenant_matches_group",
    ),
)

# Groups known to the built-in identity provider (`alquimista-ops groups setup`).
auth_groups = sa.Table(
    "auth_groups",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("precedence", sa.Integer(), nullable=False),
    one_of("name", GROUPS),
)

# Service principals for machine-to-machine calls (usage ingestion): API keys kept hashed.
service_principals = sa.Table(
    "service_principals",
    metadata,
    sa.Column("id", UUIDType, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("key_prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(128), nullable=False),
    sa.Column("scopes", JSONType, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

# Singleton rows for scheduled jobs (last run, lock holder) on both databases.
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("job_name", sa.String(64), primary_key=True),
    sa.Column("last_scheduled_for", sa.Date(), nullable=True),
    sa.Column("last_started_at", UTCDateTime(), nullable=True),
    sa.Column("last_finished_at", UTCDateTime(), nullable=True),
    sa.Column("last_status", sa.String(16), nullable=True),
    sa.Column("lock_owner", sa.String(128), nullable=True),
    sa.Column("lock_expires_at", UTCDateTime(), nullable=True),
    sa.Column("details", JSONType, nullable=True),
)

DASHBOARD_TABLES = (
    "operational_events",
    "tenant_usage_daily",
    "tenant_integrations",
    "tenant_agents",
    "tenant_users",
)


# -- running counts kept by the database itself ------------------------------------------
# Triggers of migrations 0008, 0009 and 0010 keep these in step with
# every write to ``tenants``, ``tenant_agents`` and ``tenant_users``, in the writing transaction,
# whoever writes: the staff figures read a few dozen rows here instead of grouping every tenant
# (billing by plan and segment, tenant counts) and every activation (active deployments per
# agent) on each request (profiled: 0.74 and 0.44 ms of PostgreSQL per request over 2,000
# tenants). Rows are never removed (a count back at 0 stays); emptying a counted table empties
# (or zeroes) its counts. Not in ``demo.DATA_TABLES``: deleting the rows they count is what
# empties them.
tenant_totals = sa.Table(
    "tenant_totals",
    metadata,
    sa.Column("plan", sa.String(32), primary_key=True),
    sa.Column("segment", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), primary_key=True),
    sa.Column("churned", sa.Boolean(), primary_key=True),  # churned_at IS NOT NULL
    sa.Column("tenants", sa.BigInteger(), nullable=False),
    sa.Column("mrr_cents", sa.BigInteger(), nullable=False),  # sum of mrr_estimate x 100
)

# Each tenant's active activations and active users (migration 0009's triggers on
# ``tenant_agents`` and ``tenant_users``), for the staff tenant list: a tenant without a row
# has none. No foreign key: a deleted tenant's row is left at 0 by its cascaded deletions.
tenant_counts = sa.Table(
    "tenant_counts",
    metadata,
    sa.Column("tenant_id", UUIDType, primary_key=True),
    sa.Column("active_agents", sa.BigInteger(), nullable=False),
    sa.Column("active_users", sa.BigInteger(), nullable=False),
)

# open incidents (INCIDENT_SEVERITIES, resolved_at NULL) per severity, kept by the database's
# triggers on operational_events (migration 0010)
open_incidents = sa.Table(
    "open_incidents",
    metadata,
    sa.Column("severity", sa.String(16), primary_key=True),
    sa.Column("open", sa.BigInteger(), nullable=False),
)

agent_deployments = sa.Table(
    "agent_deployments",
    metadata,
    sa.Column("agent_id", UUIDType, primary_key=True),
    sa.Column("active", sa.BigInteger(), nullable=False),  # tenant_agents with status 'active'
)


# -- usage totals (per tenant, per agent, platform) per day --------------------------
# Derived from ``tenant_usage_daily`` by ``usage.totals.refresh_usage_totals`` (called by the
# daily rollup and the demo seed), so that staff overviews over 2,000 tenants x 365 days read a
# few thousand rows instead of millions. ``response_ms_weighted`` is
# sum(avg_response_time_ms * total_requests), so averages stay request-weighted.
def _usage_total_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("response_ms_weighted", sa.Numeric(24, 2), nullable=False),
        sa.Column("total_tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(18, 6), nullable=False),
    ]


tenant_usage_totals = sa.Table(
    "tenant_usage_totals",
    metadata,
    sa.Column(
        "tenant_id",
        UUIDType,
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("date", sa.Date(), primary_key=True),
    *_usage_total_columns(),
    # Covering index: ranking tenants over a period is an index-only scan on PostgreSQL.
    sa.Index(None, "date", "tenant_id", postgresql_include=["total_requests"]),
)

agent_usage_totals = sa.Table(
    "agent_usage_totals",
    metadata,
    sa.Column("agent_id", UUIDType, sa.ForeignKey("agents.id"), primary_key=True),
    sa.Column("date", sa.Date(), primary_key=True),
    *_usage_total_columns(),
    sa.Column("tenants_with_usage", sa.Integer(), nullable=False),
    sa.Index(None, "date"),
)

platform_usage_totals = sa.Table(
    "platform_usage_totals",
    metadata,
    sa.Column("date", sa.Date(), primary_key=True),
    *_usage_total_columns(),
    sa.Column("tenants_with_usage", sa.Integer(), nullable=False),
)

# Period rankings: the staff usage overview's top tenants and agents of each standard period
# (``core.params.PERIOD_DAYS``) ending today and tomorrow (UTC), recomputed by
# ``usage.totals.refresh_usage_totals`` in the transaction that changed the totals (so they never
# disagree with them), instead of ranking every tenant's running totals and summing every
# agent's days on each read. One snapshot row per period (how many tenants had requests in it);
# its rankings: kind 'tenant' (the top ``overview_queries.TOP`` by requests) and kind 'agent'
# (likewise), ``position`` from 1, with the measures over the period. Names, plans, statuses and
# active deployments are joined at read time. A period without a snapshot (a custom range, or
# before the first refresh of the day) is ranked on the read.
usage_period_snapshots = sa.Table(
    "usage_period_snapshots",
    metadata,
    sa.Column("period_start", sa.Date(), primary_key=True),
    sa.Column("period_end", sa.Date(), primary_key=True),
    sa.Column("tenants_with_usage", sa.Integer(), nullable=False),
)

usage_period_rankings = sa.Table(
    "usage_period_rankings",
    metadata,
    sa.Column("period_start", sa.Date(), primary_key=True),
    sa.Column("period_end", sa.Date(), primary_key=True),
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("position", sa.Integer(), primary_key=True),
    sa.Column("tenant_id", UUIDType, sa.ForeignKey("tenants.id", ondelete="CASCADE")),
    sa.Column("agent_id", UUIDType, sa.ForeignKey("agents.id")),
    *_usage_total_columns(),
    sa.ForeignKeyConstraint(
        ["period_start", "period_end"],
        ["usage_period_snapshots.period_start", "usage_period_snapshots.period_end"],
        ondelete="CASCADE",
    ),
    one_of("kind", ("tenant", "agent")),
    sa.CheckConstraint(
        "(kind = 'tenant' AND agent_id IS NULL) OR (kind = 'agent' AND tenant_id IS NULL)",
        name="one_subject",
    ),
)

# Running totals per tenant (prefix sums of ``tenant_usage_totals``): the row of (tenant, D)
# holds the tenant's measures over every day up to and including D, so a tenant's figures over
# any period s..e are the row of e minus the row of s - 1 (two rows per tenant instead of one per
# day). Rows are dense: one per day from the tenant's first usage day through the last day of
# ``tenant_usage_totals``; a missing row before the first one means zero. Maintained by
# ``usage.totals.refresh_usage_totals``.
tenant_usage_cumulative = sa.Table(
    "tenant_usage_cumulative",
    metadata,
    sa.Column(
        "tenant_id",
        UUIDType,
        sa.ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("date", sa.Date(), primary_key=True),
    *_usage_total_columns(),
    # Covering index: ranking every tenant over a period is two index-only range scans.
    sa.Index(None, "date", "tenant_id", postgresql_include=["total_requests"]),
)
