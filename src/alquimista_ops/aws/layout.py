"""The deployment layout shared by the Lambda handlers, the CDK app (``infra/``) and
``alquimista-ops deploy validate``: one name for every route function, job and resource."""

from __future__ import annotations

from dataclasses import dataclass

SERVICE_NAME = "operational-dashboard"
HANDLERS_MODULE = "alquimista_ops.aws.handlers"
JOBS_MODULE = "alquimista_ops.aws.jobs"


@dataclass(frozen=True)
class RouteFunction:
    """One of the twelve API routes and the Lambda function that serves it."""

    name: str  # short name, used in resource names: alquimista-<name>-<env>
    method: str
    path: str  # API Gateway path (``{id}`` parameters)
    attr: str  # function of ``alquimista_ops.aws.handlers``

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def handler(self) -> str:
        return f"{HANDLERS_MODULE}.{self.attr}"


@dataclass(frozen=True)
class JobFunction:
    name: str
    attr: str  # function of ``alquimista_ops.aws.jobs``

    @property
    def handler(self) -> str:
        return f"{JOBS_MODULE}.{self.attr}"


# The twelve routes of PRODUCT.md §3 (the deployment document's API Gateway checklist).
ROUTES: tuple[RouteFunction, ...] = (
    RouteFunction("tenant-me", "GET", "/tenant/me", "tenant_me"),
    RouteFunction("tenant-agents", "GET", "/tenant/agents", "tenant_agents"),
    RouteFunction("tenant-integrations", "GET", "/tenant/integrations", "tenant_integrations"),
    RouteFunction("tenant-usage", "GET", "/tenant/usage", "tenant_usage"),
    RouteFunction("tenant-incidents", "GET", "/tenant/incidents", "tenant_incidents"),
    RouteFunction("internal-tenants", "GET", "/internal/tenants", "internal_tenants"),
    RouteFunction("internal-tenant-detail", "GET", "/internal/tenants/{id}", "internal_tenant"),
    RouteFunction(
        "internal-tenant-agents", "GET", "/internal/tenants/{id}/agents", "internal_tenant_agents"
    ),
    RouteFunction(
        "internal-usage-overview", "GET", "/internal/usage/overview", "internal_usage_overview"
    ),
    RouteFunction(
        "internal-billing-overview",
        "GET",
        "/internal/billing/overview",
        "internal_billing_overview",
    ),
    RouteFunction("create-command", "POST", "/internal/operations/commands", "create_command"),
    RouteFunction("list-commands", "GET", "/internal/operations/commands", "list_commands"),
)

AGGREGATE_METRICS = JobFunction("aggregate-metrics", "aggregate_metrics")
PROCESS_COMMAND = JobFunction("process-command", "process_command")
JOBS: tuple[JobFunction, ...] = (AGGREGATE_METRICS, PROCESS_COMMAND)

# Routes whose functions read or write the commands table.
COMMAND_ROUTES = frozenset({"create-command", "list-commands"})

GROUP_NAMES = ("INTERNAL_ADMIN", "INTERNAL_SUPPORT", "TENANT_ADMIN", "TENANT_USER")
TENANT_ID_ATTRIBUTE = "custom:tenant_id"
AGGREGATION_SCHEDULE = "cron(0 2 * * ? *)"  # 02:00 UTC every day
STREAM_BATCH_SIZE = 10


def function_name(name: str, env: str) -> str:
    return f"alquimista-{name}-{env}"


def commands_table_name(env: str) -> str:
    return f"alquimista-operational-commands-{env}"


def stack_name(env: str) -> str:
    return f"OperationalDashboardStack-{env}"


def http_api_name(env: str) -> str:
    return f"alquimista-operational-dashboard-{env}"


def aggregation_rule_name(env: str) -> str:
    return f"alquimista-aggregate-metrics-daily-{env}"


def redis_group_id(env: str) -> str:
    return f"alquimista-opdash-{env}"


def dead_letter_queue_name(env: str) -> str:
    return f"alquimista-process-command-dlq-{env}"


def alarm_prefix(env: str) -> str:
    return f"alquimista-opdash-{env}-"


def all_function_names(env: str) -> list[str]:
    return [function_name(r.name, env) for r in ROUTES] + [function_name(j.name, env) for j in JOBS]


# -- the commands table (PRODUCT.md §6) ----------------------------------------------------------
# One definition for the CDK stack (infra/), the DynamoDB command store and the moto tables of
# the tests, so they cannot drift apart. Every key attribute is a string (ids, ISO timestamps).
COMMANDS_PARTITION_KEY = "command_id"
COMMANDS_SORT_KEY = "created_at"  # ISO-8601 UTC, fixed width: sorts as it reads
COMMANDS_TTL_ATTRIBUTE = "expires_at"  # epoch seconds
TENANT_INDEX = "tenant_id-created_at-index"
STATUS_INDEX = "status-created_at-index"
# index name -> (partition key, sort key); projection ALL
COMMANDS_INDEXES: dict[str, tuple[str, str]] = {
    TENANT_INDEX: ("tenant_id", COMMANDS_SORT_KEY),
    STATUS_INDEX: ("status", COMMANDS_SORT_KEY),
}


def commands_table_definition(table_name: str) -> dict[str, object]:
    """``CreateTable`` arguments of the commands table (boto3/moto), same shape as the stack's."""
    attributes = {COMMANDS_PARTITION_KEY, COMMANDS_SORT_KEY}
    for partition, sort in COMMANDS_INDEXES.values():
        attributes.update((partition, sort))
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": COMMANDS_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": COMMANDS_SORT_KEY, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": sort, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, (partition, sort) in COMMANDS_INDEXES.items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
