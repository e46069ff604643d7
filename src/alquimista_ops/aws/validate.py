"""``alquimista-ops deploy validate --env ENV``: the deployment document's post-deploy
checklist ("Infraestrutura", "Cognito", "API Gateway", "Monitoramento"), checked through boto3
against a deployed environment. Each item is one PASS/FAIL line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from alquimista_ops.auth.service import GROUP_DEFINITIONS
from alquimista_ops.aws import layout
from alquimista_ops.aws.checks import Check

REQUIRED_ENVIRONMENT = (
    "ENV",
    "AURORA_SECRET_ARN",
    "AURORA_CLUSTER_ARN",
    "POWERTOOLS_SERVICE_NAME",
    "REDIS_HOST",
    "REDIS_PORT",
    "CACHE_ENABLED",
    "COMMANDS_TABLE",
    "AUTH_MODE",
    "COGNITO_USER_POOL_ID",
    "COGNITO_CLIENT_ID",
)
GSI_NAMES = ("tenant_id-created_at-index", "status-created_at-index")


class DeploymentValidator:
    def __init__(self, env: str, session: Any, user_pool_id: str | None = None) -> None:
        self.env = env
        self.session = session
        self.user_pool_id = user_pool_id
        self._clients: dict[str, Any] = {}
        self._functions: dict[str, dict[str, Any]] | None = None
        self._table: dict[str, Any] | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    # -- the checklist ----------------------------------------------------------------------
    def run(self) -> list[Check]:
        checks: list[Check] = []
        for section in (
            self.table_checks,
            self.redis_checks,
            self.function_checks,
            self.schedule_checks,
            self.stream_checks,
            self.cognito_checks,
            self.api_checks,
            self.monitoring_checks,
            self.activity_checks,
        ):
            try:
                checks.extend(section())
            except Exception as exc:  # one broken section must not hide the others
                checks.append(Check(section.__name__.replace("_", " "), False, _error(exc)))
        return checks

    def table_checks(self) -> Iterator[Check]:
        name = layout.commands_table_name(self.env)
        table = self.table()
        if table is None:
            yield Check(f"DynamoDB table {name}", False, "not found")
            return
        yield Check(
            f"DynamoDB table {name}", table["TableStatus"] == "ACTIVE", table["TableStatus"]
        )
        keys = [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]]
        yield _expect("table keys command_id + created_at", keys, [
            ("command_id", "HASH"), ("created_at", "RANGE")
        ])  # fmt: skip
        indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
        for index in GSI_NAMES:
            status = indexes.get(index, {}).get("IndexStatus")
            yield Check(f"GSI {index}", status == "ACTIVE", status or "missing")
        stream = table.get("StreamSpecification") or {}
        yield _expect(
            "stream NEW_AND_OLD_IMAGES",
            stream.get("StreamViewType") if stream.get("StreamEnabled") else "disabled",
            "NEW_AND_OLD_IMAGES",
        )
        dynamodb = self.client("dynamodb")
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        yield _expect(
            "TTL on expires_at",
            (ttl.get("AttributeName"), ttl.get("TimeToLiveStatus")),
            ("expires_at", "ENABLED"),
        )
        backups = dynamodb.describe_continuous_backups(TableName=name)
        pitr = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
        yield _expect("point-in-time recovery", pitr.get("PointInTimeRecoveryStatus"), "ENABLED")

    def redis_checks(self) -> Iterator[Check]:
        group_id = layout.redis_group_id(self.env)
        elasticache = self.client("elasticache")
        try:
            group = elasticache.describe_replication_groups(ReplicationGroupId=group_id)[
                "ReplicationGroups"
            ][0]
        except Exception as exc:
            yield Check(f"ElastiCache Redis {group_id}", False, _error(exc))
            return
        yield _expect(f"ElastiCache Redis {group_id} available", group.get("Status"), "available")
        redis_groups: set[str] = set()
        for member in group.get("MemberClusters", []):
            cluster = elasticache.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]
            redis_groups |= {g["SecurityGroupId"] for g in cluster.get("SecurityGroups", [])}
        lambda_groups = {
            sg
            for fn in self.functions().values()
            for sg in (fn.get("VpcConfig") or {}).get("SecurityGroupIds", [])
        }
        yield self._redis_security_check(redis_groups, lambda_groups)

    def _redis_security_check(self, redis_groups: set[str], lambda_groups: set[str]) -> Check:
        name = "Redis security group open only to the functions' security group"
        if not redis_groups:
            return Check(name, False, "no security group on the Redis nodes")
        if not lambda_groups:
            return Check(name, False, "the functions have no VPC security group")
        described = self.client("ec2").describe_security_groups(GroupIds=sorted(redis_groups))
        problems = []
        allowed = 0
        for group in described["SecurityGroups"]:
            for rule in group.get("IpPermissions", []):
                if rule.get("IpRanges") or rule.get("Ipv6Ranges") or rule.get("PrefixListIds"):
                    problems.append(f"{group['GroupId']} admits an address range")
                for pair in rule.get("UserIdGroupPairs", []):
                    if pair.get("GroupId") in lambda_groups:
                        allowed += 1
                    else:
                        problems.append(f"{group['GroupId']} admits {pair.get('GroupId')}")
        if not allowed:
            problems.append("no rule admits the functions' security group")
        return Check(name, not problems, "; ".join(problems))

    def function_checks(self) -> Iterator[Check]:
        functions = self.functions()
        expected = layout.all_function_names(self.env)
        missing = [name for name in expected if name not in functions]
        yield Check(
            f"{len(expected)} Lambda functions deployed",
            not missing,
            f"missing: {', '.join(missing)}" if missing else "",
        )
        present = [functions[n] for n in expected if n in functions]
        untraced = [f["FunctionName"] for f in present if _tracing(f) != "Active"]
        yield Check("X-Ray tracing active", not untraced and bool(present), ", ".join(untraced))
        outside = [
            f["FunctionName"] for f in present if not (f.get("VpcConfig") or {}).get("VpcId")
        ]
        yield Check("functions in the VPC", not outside and bool(present), ", ".join(outside))
        lacking = []
        for function in present:
            variables = (function.get("Environment") or {}).get("Variables", {})
            absent = [v for v in REQUIRED_ENVIRONMENT if not variables.get(v)]
            if absent or variables.get("AUTH_MODE") != "cognito":
                lacking.append(f"{function['FunctionName']} ({', '.join(absent) or 'AUTH_MODE'})")
        yield Check(
            "function environment variables", not lacking and bool(present), "; ".join(lacking)
        )

    def schedule_checks(self) -> Iterator[Check]:
        name = layout.aggregation_rule_name(self.env)
        events = self.client("events")
        try:
            rule = events.describe_rule(Name=name)
        except Exception as exc:
            yield Check(f"EventBridge rule {name}", False, _error(exc))
            return
        yield _expect(
            f"EventBridge rule {name} active",
            (rule.get("State"), rule.get("ScheduleExpression")),
            ("ENABLED", layout.AGGREGATION_SCHEDULE),
        )
        target_arns = [t["Arn"] for t in events.list_targets_by_rule(Rule=name)["Targets"]]
        aggregate = layout.function_name(layout.AGGREGATE_METRICS.name, self.env)
        targeted = [arn.split(":function:")[-1].split(":")[0] for arn in target_arns]
        yield Check(
            "daily rule targets the aggregation function",
            aggregate in targeted,
            ", ".join(target_arns) or "no target",
        )

    def stream_checks(self) -> Iterator[Check]:
        name = layout.function_name(layout.PROCESS_COMMAND.name, self.env)
        table = self.table()
        stream_arn = (table or {}).get("LatestStreamArn")
        mappings = (
            self.client("lambda")
            .list_event_source_mappings(FunctionName=name)
            .get("EventSourceMappings", [])
        )
        mapping = next((m for m in mappings if m.get("EventSourceArn") == stream_arn), None)
        if mapping is None or stream_arn is None:
            yield Check(
                "DynamoDB stream mapping", False, f"no mapping from the table stream to {name}"
            )
            return
        problems = []
        if mapping.get("State") not in ("Enabled", "Enabling", "Creating", "Updating"):
            problems.append(f"state {mapping.get('State')}")
        if mapping.get("BatchSize") != layout.STREAM_BATCH_SIZE:
            problems.append(f"batch size {mapping.get('BatchSize')}")
        if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
            problems.append("partial batch failures not reported")
        destination = ((mapping.get("DestinationConfig") or {}).get("OnFailure") or {}).get(
            "Destination"
        )
        if not destination:
            problems.append("no on-failure destination")
        yield Check("DynamoDB stream mapping", not problems, "; ".join(problems))

    def cognito_checks(self) -> Iterator[Check]:
        if not self.user_pool_id:
            yield Check(
                "Cognito groups", False, "no user pool id (COGNITO_USER_POOL_ID or --user-pool-id)"
            )
            return
        from alquimista_ops.aws.cognito import existing_groups, has_tenant_attribute

        cognito = self.client("cognito-idp")
        groups = existing_groups(cognito, self.user_pool_id)
        for definition in GROUP_DEFINITIONS:
            yield Check(f"Cognito group {definition.name}", definition.name in groups)
        yield Check("custom:tenant_id attribute", has_tenant_attribute(cognito, self.user_pool_id))
        admins = (
            cognito.list_users_in_group(
                UserPoolId=self.user_pool_id, GroupName="INTERNAL_ADMIN", Limit=1
            ).get("Users", [])
            if "INTERNAL_ADMIN" in groups
            else []
        )
        yield Check("an INTERNAL_ADMIN user exists", bool(admins))

    def api_checks(self) -> Iterator[Check]:
        api_name = layout.http_api_name(self.env)
        api_client = self.client("apigatewayv2")
        apis = [a for a in _pages(api_client.get_apis, "Items") if a.get("Name") == api_name]
        if not apis:
            yield Check(f"HTTP API {api_name}", False, "not found")
            return
        api_id = apis[0]["ApiId"]
        yield Check(f"HTTP API {api_name}", True, apis[0].get("ApiEndpoint", ""))
        routes = {r["RouteKey"]: r for r in _pages(api_client.get_routes, "Items", ApiId=api_id)}
        authorizers = {
            authorizer_id: api_client.get_authorizer(ApiId=api_id, AuthorizerId=authorizer_id)
            for authorizer_id in {
                r["AuthorizerId"] for r in routes.values() if r.get("AuthorizerId")
            }
        }
        unprotected = []
        for route in layout.ROUTES:
            found = routes.get(route.route_key)
            yield Check(f"route {route.route_key}", found is not None, "" if found else "missing")
            if found is None:
                continue
            authorizer = authorizers.get(found.get("AuthorizerId", ""))
            if (
                found.get("AuthorizationType") != "JWT"
                or not authorizer
                or authorizer.get("AuthorizerType") != "JWT"
            ):
                unprotected.append(route.route_key)
        yield Check(
            "Cognito JWT authorizer on every route",
            not unprotected and len(routes) >= len(layout.ROUTES),
            ", ".join(unprotected),
        )

    def monitoring_checks(self) -> Iterator[Check]:
        logs = self.client("logs")
        missing, unbounded = [], []
        for name in layout.all_function_names(self.env):
            group_name = f"/aws/lambda/{name}"
            groups = logs.describe_log_groups(logGroupNamePrefix=group_name).get("logGroups", [])
            group = next((g for g in groups if g["logGroupName"] == group_name), None)
            if group is None:
                missing.append(name)
            elif not group.get("retentionInDays"):
                unbounded.append(name)
        yield Check("CloudWatch log groups for every function", not missing, ", ".join(missing))
        yield Check("log retention set", not unbounded and not missing, ", ".join(unbounded))
        alarms = (
            self.client("cloudwatch")
            .describe_alarms(AlarmNamePrefix=layout.alarm_prefix(self.env))
            .get("MetricAlarms", [])
        )
        metrics = {a.get("MetricName") for a in alarms}
        wanted = {
            "Errors": "Lambda errors",
            "5xx": "API 5xx",
            "WriteThrottleEvents": "DynamoDB throttles",
            "EngineCPUUtilization": "Redis CPU",
            "DatabaseMemoryUsagePercentage": "Redis memory",
            "ApproximateNumberOfMessagesVisible": "dead-letter depth",
        }
        absent = [label for metric, label in wanted.items() if metric not in metrics]
        yield Check(
            "alarms configured", not absent, f"missing: {', '.join(absent)}" if absent else ""
        )

    def activity_checks(self) -> Iterator[Check]:
        """The document's functional checks that only metrics can answer: the aggregation job
        ran without errors, the command processor is not failing."""
        aggregate = layout.function_name(layout.AGGREGATE_METRICS.name, self.env)
        invocations = self._metric_sum(aggregate, "Invocations", hours=26)
        errors = self._metric_sum(aggregate, "Errors", hours=26)
        name = "aggregation job ran without errors (last 26 h)"
        if invocations == 0 and errors == 0:
            yield Check(name, False, "no run yet (daily at 02:00 UTC)", skipped=True)
        else:
            yield Check(name, errors == 0, f"{invocations:.0f} runs, {errors:.0f} errors")
        processor = layout.function_name(layout.PROCESS_COMMAND.name, self.env)
        failures = self._metric_sum(processor, "Errors", hours=24)
        sqs = self.client("sqs")
        url = sqs.get_queue_url(QueueName=layout.dead_letter_queue_name(self.env))["QueueUrl"]
        waiting = int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"
            ]["ApproximateNumberOfMessages"]
        )
        yield Check(
            "command stream processing without failures (last 24 h, dead-letter queue empty)",
            failures == 0 and waiting == 0,
            f"{failures:.0f} errors, {waiting} dead-lettered batches",
        )

    def _metric_sum(self, function_name: str, metric: str, *, hours: int) -> float:
        end = datetime.now(UTC) + timedelta(minutes=1)  # include the current minute
        response = self.client("cloudwatch").get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName=metric,
            Dimensions=[{"Name": "FunctionName", "Value": function_name}],
            StartTime=end - timedelta(hours=hours),
            EndTime=end,
            Period=3600,
            Statistics=["Sum"],
        )
        return float(sum(point.get("Sum", 0) for point in response.get("Datapoints", [])))

    # -- lookups ----------------------------------------------------------------------------
    def table(self) -> dict[str, Any] | None:
        if self._table is None:
            try:
                self._table = self.client("dynamodb").describe_table(
                    TableName=layout.commands_table_name(self.env)
                )["Table"]
            except Exception:
                return None
        return self._table

    def functions(self) -> dict[str, dict[str, Any]]:
        if self._functions is None:
            found: dict[str, dict[str, Any]] = {}
            client = self.client("lambda")
            for name in layout.all_function_names(self.env):
                try:
                    found[name] = client.get_function_configuration(FunctionName=name)
                except Exception:
                    continue
            self._functions = found
        return self._functions


def _tracing(function: dict[str, Any]) -> str | None:
    return (function.get("TracingConfig") or {}).get("Mode")


def _expect(name: str, actual: Any, wanted: Any) -> Check:
    return Check(name, actual == wanted, "" if actual == wanted else f"found {actual!r}")


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _pages(call: Callable[..., Any], key: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        response = call(**kwargs, **({"NextToken": token} if token else {}))
        yield from response.get(key, [])
        token = response.get("NextToken")
        if not token:
            return


def database_checks(engine: Engine, schema: str) -> list[Check]:
    """The document's "Banco de Dados" items: the five dashboard tables and their indexes,
    and the database at the latest migration."""
    import sqlalchemy as sa

    from alquimista_ops.core import migrate
    from alquimista_ops.core.schema import DASHBOARD_TABLES, metadata

    checks: list[Check] = []
    try:
        current = migrate.current_revision(engine, schema)
        head = migrate.head_revision()
        checks.append(_expect(f"database at migration {head}", current, head))
        inspector = sa.inspect(engine)
        present = set(inspector.get_table_names(schema=schema))
        for table in DASHBOARD_TABLES:
            exists = table in present
            checks.append(Check(f"table {table}", exists, "" if exists else "missing"))
        short = []
        for table in DASHBOARD_TABLES:
            if table not in present:
                continue
            wanted = len(metadata.tables[table].indexes)
            found = len(inspector.get_indexes(table, schema=schema))
            if found < wanted:
                short.append(f"{table} ({found} of {wanted})")
        checks.append(Check("indexes on every dashboard table", not short, ", ".join(short)))
    except Exception as exc:
        checks.append(Check("database reachable", False, _error(exc)))
    return checks
