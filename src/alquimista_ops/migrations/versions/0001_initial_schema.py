"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agent_requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("response_time_ms", sa.Integer(), nullable=False),
        sa.Column("tokens_used", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.CheckConstraint("status IN ('success', 'error')", name=op.f("ck_agent_requests_status")),
        sa.CheckConstraint(
            "response_time_ms >= 0 AND tokens_used >= 0",
            name=op.f("ck_agent_requests_measures_non_negative"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_agent_requests")),
    )
    op.create_index(
        op.f("ix_agent_requests_day_tenant_id_agent_id"),
        "agent_requests",
        ["day", "tenant_id", "agent_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_agent_requests_tenant_id_created_at"),
        "agent_requests",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=32), server_default="1.0.0", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("price_per_1k_tokens_usd", sa.Numeric(precision=10, scale=6), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'beta', 'deprecated')", name=op.f("ck_agents_status")
        ),
        sa.CheckConstraint(
            "price_per_1k_tokens_usd >= 0", name=op.f("ck_agents_price_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("name", name=op.f("uq_agents_name")),
    )
    op.create_table(
        "auth_groups",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("precedence", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "name IN ('INTERNAL_ADMIN', 'INTERNAL_SUPPORT', 'TENANT_ADMIN', 'TENANT_USER')",
            name=op.f("ck_auth_groups_name"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_auth_groups")),
    )
    op.create_table(
        "job_runs",
        sa.Column("job_name", sa.String(length=64), nullable=False),
        sa.Column("last_scheduled_for", sa.Date(), nullable=True),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=True),
        sa.Column("lock_owner", sa.String(length=128), nullable=True),
        sa.Column("lock_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("job_name", name=op.f("pk_job_runs")),
    )
    op.create_table(
        "plans",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("max_agents", sa.Integer(), nullable=False),
        sa.Column("max_users", sa.Integer(), nullable=False),
        sa.Column("max_requests_per_month", sa.BigInteger(), nullable=False),
        sa.Column("price_monthly_brl", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "name IN ('starter', 'professional', 'business', 'enterprise')",
            name=op.f("ck_plans_name"),
        ),
        sa.CheckConstraint(
            "max_agents >= 0 AND max_users >= 0", name=op.f("ck_plans_limits_non_negative")
        ),
        sa.CheckConstraint(
            "max_requests_per_month >= 0", name=op.f("ck_plans_requests_non_negative")
        ),
        sa.CheckConstraint("price_monthly_brl >= 0", name=op.f("ck_plans_price_non_negative")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    op.create_table(
        "service_principals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column(
            "scopes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_principals")),
        sa.UniqueConstraint("key_prefix", name=op.f("uq_service_principals_key_prefix")),
        sa.UniqueConstraint("name", name=op.f("uq_service_principals_name")),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_search", sa.String(length=200), nullable=False),
        sa.Column("cnpj", sa.String(length=14), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column(
            "mrr_estimate", sa.Numeric(precision=12, scale=2), server_default="0", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("churned_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "segment IN ('saude', 'educacao', 'varejo', 'servicos', 'tecnologia', 'outro')",
            name=op.f("ck_tenants_segment"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'trial', 'inactive', 'suspended')", name=op.f("ck_tenants_status")
        ),
        sa.CheckConstraint("length(cnpj) = 14", name=op.f("ck_tenants_cnpj_length")),
        sa.CheckConstraint("mrr_estimate >= 0", name=op.f("ck_tenants_mrr_non_negative")),
        sa.ForeignKeyConstraint(["plan"], ["plans.name"], name=op.f("fk_tenants_plan_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("cnpj", name=op.f("uq_tenants_cnpj")),
    )
    op.create_index(op.f("ix_tenants_churned_at"), "tenants", ["churned_at"], unique=False)
    op.create_index(op.f("ix_tenants_name_search"), "tenants", ["name_search"], unique=False)
    op.create_index(op.f("ix_tenants_plan"), "tenants", ["plan"], unique=False)
    op.create_index(op.f("ix_tenants_segment"), "tenants", ["segment"], unique=False)
    op.create_index(
        op.f("ix_tenants_status_created_at"), "tenants", ["status", "created_at"], unique=False
    )
    op.create_table(
        "auth_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("group_name", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(group_name IN ('INTERNAL_ADMIN', 'INTERNAL_SUPPORT') AND tenant_id IS NULL)"
            " OR (group_name IN ('TENANT_ADMIN', 'TENANT_USER') AND tenant_id IS NOT NULL)",
            name=op.f("ck_auth_users_tenant_matches_group"),
        ),
        sa.CheckConstraint(
            "group_name IN ('INTERNAL_ADMIN', 'INTERNAL_SUPPORT', 'TENANT_ADMIN', 'TENANT_USER')",
            name=op.f("ck_auth_users_group_name"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_auth_users_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_users")),
        sa.UniqueConstraint("email", name=op.f("uq_auth_users_email")),
    )
    op.create_table(
        "operational_commands",
        sa.Column("command_id", sa.Uuid(), nullable=False),
        sa.Column("command_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_by_email", sa.String(length=254), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "output",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("max_attempts", sa.Integer(), server_default="5", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "command_type IN ('HEALTH_CHECK', 'RESTART_AGENT', 'RESET_TOKEN', 'REPROCESS_QUEUE',"
            " 'PAUSE_AGENT', 'SUSPEND_TENANT', 'REACTIVATE_TENANT', 'RECOMPUTE_USAGE',"
            " 'CLEAR_CACHE')",
            name=op.f("ck_operational_commands_command_type"),
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'RUNNING', 'SUCCESS', 'ERROR', 'CANCELLED')",
            name=op.f("ck_operational_commands_status"),
        ),
        sa.CheckConstraint(
            "attempts >= 0 AND max_attempts >= 1",
            name=op.f("ck_operational_commands_attempts_bounds"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_operational_commands_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_operational_commands")),
        sa.UniqueConstraint(
            "created_by",
            "idempotency_key",
            name=op.f("uq_operational_commands_created_by_idempotency_key"),
        ),
    )
    op.create_index(
        op.f("ix_operational_commands_created_at"),
        "operational_commands",
        ["created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_operational_commands_status_created_at"),
        "operational_commands",
        ["status", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_operational_commands_status_next_attempt_at"),
        "operational_commands",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_operational_commands_tenant_id_created_at"),
        "operational_commands",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "operational_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("event_category", sa.String(length=16), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("user_email", sa.String(length=254), nullable=True),
        sa.Column("resource_type", sa.String(length=64), nullable=True),
        sa.Column("resource_id", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="success", nullable=False),
        sa.Column("severity", sa.String(length=16), server_default="info", nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
        ),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "event_category IN ('auth', 'tenant', 'agent', 'integration', 'command', 'system')",
            name=op.f("ck_operational_events_event_category"),
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'error', 'critical')",
            name=op.f("ck_operational_events_severity"),
        ),
        sa.CheckConstraint(
            "status IN ('success', 'failure', 'pending')", name=op.f("ck_operational_events_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_operational_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operational_events")),
    )
    op.create_index(
        op.f("ix_operational_events_event_category_created_at"),
        "operational_events",
        ["event_category", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_operational_events_severity_created_at"),
        "operational_events",
        ["severity", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_operational_events_tenant_id_created_at"),
        "operational_events",
        ["tenant_id", "created_at"],
        unique=False,
    )
    op.create_table(
        "tenant_agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column(
            "activated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("deactivated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_errors", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_restart_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'error')", name=op.f("ck_tenant_agents_status")
        ),
        sa.CheckConstraint(
            "total_requests >= 0 AND total_errors >= 0",
            name=op.f("ck_tenant_agents_counters_non_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_tenant_agents_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_agents_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_agents")),
        sa.UniqueConstraint(
            "tenant_id", "agent_id", name=op.f("uq_tenant_agents_tenant_id_agent_id")
        ),
    )
    op.create_index(op.f("ix_tenant_agents_agent_id"), "tenant_agents", ["agent_id"], unique=False)
    op.create_table(
        "tenant_integrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("integration_type", sa.String(length=32), nullable=False),
        sa.Column("integration_name", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("credentials_encrypted", sa.Text(), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sync_status", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sync_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("error_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "integration_type IN ('whatsapp', 'email', 'crm', 'calendar', 'payment', 'erp',"
            " 'slack', 'webhook')",
            name=op.f("ck_tenant_integrations_integration_type"),
        ),
        sa.CheckConstraint(
            "last_sync_status IS NULL OR last_sync_status IN ('success', 'failure')",
            name=op.f("ck_tenant_integrations_last_sync_status"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'error', 'pending')",
            name=op.f("ck_tenant_integrations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_integrations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_integrations")),
    )
    op.create_index(
        op.f("ix_tenant_integrations_tenant_id_status"),
        "tenant_integrations",
        ["tenant_id", "status"],
        unique=False,
    )
    op.create_table(
        "tenant_usage_daily",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("total_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("avg_response_time_ms", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("total_tokens_used", sa.BigInteger(), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(precision=16, scale=6), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "successful_requests >= 0 AND failed_requests >= 0",
            name=op.f("ck_tenant_usage_daily_non_negative"),
        ),
        sa.CheckConstraint(
            "total_requests = successful_requests + failed_requests",
            name=op.f("ck_tenant_usage_daily_totals_add_up"),
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_tenant_usage_daily_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_usage_daily_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "agent_id", "date", name=op.f("pk_tenant_usage_daily")
        ),
    )
    op.create_index(
        op.f("ix_tenant_usage_daily_date"), "tenant_usage_daily", ["date"], unique=False
    )
    op.create_table(
        "tenant_users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("cognito_sub", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), server_default="user", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('admin', 'user', 'viewer')", name=op.f("ck_tenant_users_role")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'inactive', 'suspended')", name=op.f("ck_tenant_users_status")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_users_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_users")),
        sa.UniqueConstraint("cognito_sub", name=op.f("uq_tenant_users_cognito_sub")),
        sa.UniqueConstraint("tenant_id", "email", name=op.f("uq_tenant_users_tenant_id_email")),
    )


def downgrade() -> None:
    op.drop_table("tenant_users")
    op.drop_index(op.f("ix_tenant_usage_daily_date"), table_name="tenant_usage_daily")
    op.drop_table("tenant_usage_daily")
    op.drop_index(op.f("ix_tenant_integrations_tenant_id_status"), table_name="tenant_integrations")
    op.drop_table("tenant_integrations")
    op.drop_index(op.f("ix_tenant_agents_agent_id"), table_name="tenant_agents")
    op.drop_table("tenant_agents")
    op.drop_index(
        op.f("ix_operational_events_tenant_id_created_at"), table_name="operational_events"
    )
    op.drop_index(
        op.f("ix_operational_events_severity_created_at"), table_name="operational_events"
    )
    op.drop_index(
        op.f("ix_operational_events_event_category_created_at"), table_name="operational_events"
    )
    op.drop_table("operational_events")
    op.drop_index(
        op.f("ix_operational_commands_tenant_id_created_at"), table_name="operational_commands"
    )
    op.drop_index(
        op.f("ix_operational_commands_status_next_attempt_at"), table_name="operational_commands"
    )
    op.drop_index(
        op.f("ix_operational_commands_status_created_at"), table_name="operational_commands"
    )
    op.drop_index(op.f("ix_operational_commands_created_at"), table_name="operational_commands")
    op.drop_table("operational_commands")
    op.drop_table("auth_users")
    op.drop_index(op.f("ix_tenants_status_created_at"), table_name="tenants")
    op.drop_index(op.f("ix_tenants_segment"), table_name="tenants")
    op.drop_index(op.f("ix_tenants_plan"), table_name="tenants")
    op.drop_index(op.f("ix_tenants_name_search"), table_name="tenants")
    op.drop_index(op.f("ix_tenants_churned_at"), table_name="tenants")
    op.drop_table("tenants")
    op.drop_table("service_principals")
    op.drop_table("plans")
    op.drop_table("job_runs")
    op.drop_table("auth_groups")
    op.drop_table("agents")
    op.drop_index(op.f("ix_agent_requests_tenant_id_created_at"), table_name="agent_requests")
    op.drop_index(op.f("ix_agent_requests_day_tenant_id_agent_id"), table_name="agent_requests")
    op.drop_table("agent_requests")
