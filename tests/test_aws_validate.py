"""``deploy validate`` against an environment built in moto the way the stack builds it."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from moto import mock_aws
from typer.testing import CliRunner

from alquimista_ops.aws import cognito, layout
from alquimista_ops.aws.validate import REQUIRED_ENVIRONMENT, DeploymentValidator, database_checks
from alquimista_ops.cli import app as cli_app
from alquimista_ops.core.settings import get_settings

REGION = "us-east-1"
ENV = "dev"
AGGREGATE = layout.function_name("aggregate-metrics", ENV)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def build_environment(session: Any, *, record_run: bool = True) -> dict[str, Any]:
    """What ``cdk deploy`` creates, with the resources moto supports."""
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    lambda_sg = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]
    redis_sg = ec2.create_security_group(GroupName="redis", Description="r", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=redis_sg,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 6379,
                "ToPort": 6379,
                "UserIdGroupPairs": [{"GroupId": lambda_sg}],
            }
        ],
    )

    elasticache = session.client("elasticache")
    group_id = layout.redis_group_id(ENV)
    elasticache.create_replication_group(
        ReplicationGroupId=group_id,
        ReplicationGroupDescription="cache",
        CacheNodeType="cache.t3.micro",
        Engine="redis",
        NumCacheClusters=1,
        SecurityGroupIds=[redis_sg],
    )
    # moto lists the member cluster without creating it; AWS creates it with the group
    elasticache.create_cache_cluster(
        CacheClusterId=f"{group_id}-001",
        Engine="redis",
        CacheNodeType="cache.t3.micro",
        NumCacheNodes=1,
        SecurityGroupIds=[redis_sg],
    )

    dynamodb = session.client("dynamodb")
    table_name = layout.commands_table_name(ENV)
    key = [
        {"AttributeName": "command_id", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    table = dynamodb.create_table(
        TableName=table_name,
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("command_id", "created_at", "tenant_id", "status")
        ],
        KeySchema=key,
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        GlobalSecondaryIndexes=[
            {
                "IndexName": f"{partition}-created_at-index",
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": "created_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for partition in ("tenant_id", "status")
        ],
    )["TableDescription"]
    dynamodb.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    dynamodb.update_continuous_backups(
        TableName=table_name,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )

    role = session.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")
    lambda_client = session.client("lambda")
    logs = session.client("logs")
    variables = dict.fromkeys(REQUIRED_ENVIRONMENT, "x") | {"AUTH_MODE": "cognito"}
    arns: dict[str, str] = {}
    for name in layout.all_function_names(ENV):
        arns[name] = lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role["Role"]["Arn"],
            Handler="handler.handler",
            Code={"ZipFile": _zip()},
            TracingConfig={"Mode": "Active"},
            VpcConfig={"SubnetIds": [subnet], "SecurityGroupIds": [lambda_sg]},
            Environment={"Variables": variables},
        )["FunctionArn"]
        logs.create_log_group(logGroupName=f"/aws/lambda/{name}")
        logs.put_retention_policy(logGroupName=f"/aws/lambda/{name}", retentionInDays=14)

    sqs = session.client("sqs")
    queue = sqs.create_queue(QueueName=layout.dead_letter_queue_name(ENV))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    lambda_client.create_event_source_mapping(
        FunctionName=layout.function_name("process-command", ENV),
        EventSourceArn=table["LatestStreamArn"],
        BatchSize=10,
        StartingPosition="TRIM_HORIZON",
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {"Destination": queue_arn}},
    )

    events = session.client("events")
    rule = layout.aggregation_rule_name(ENV)
    events.put_rule(Name=rule, ScheduleExpression="cron(0 2 * * ? *)", State="ENABLED")
    events.put_targets(
        Rule=rule,
        Targets=[{"Id": "aggregate", "Arn": arns[layout.function_name("aggregate-metrics", ENV)]}],
    )

    idp = session.client("cognito-idp")
    pool = idp.create_user_pool(
        PoolName="alquimista-users-dev",
        Schema=[{"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True}],
    )["UserPool"]["Id"]
    cognito.setup_groups(idp, pool)
    idp.admin_create_user(UserPoolId=pool, Username="admin@alquimista.ai")
    idp.admin_add_user_to_group(
        UserPoolId=pool, Username="admin@alquimista.ai", GroupName="INTERNAL_ADMIN"
    )

    api_client = session.client("apigatewayv2")
    api = api_client.create_api(Name=layout.http_api_name(ENV), ProtocolType="HTTP")["ApiId"]
    authorizer = api_client.create_authorizer(
        ApiId=api,
        AuthorizerType="JWT",
        Name="cognito-jwt",
        IdentitySource=["$request.header.Authorization"],
        JwtConfiguration={
            "Audience": ["client"],
            "Issuer": f"https://cognito-idp.{REGION}.amazonaws.com/{pool}",
        },
    )["AuthorizerId"]
    routes = {}
    for route in layout.ROUTES:
        routes[route.route_key] = api_client.create_route(
            ApiId=api, RouteKey=route.route_key, AuthorizationType="JWT", AuthorizerId=authorizer
        )["RouteId"]

    cloudwatch = session.client("cloudwatch")
    for metric, namespace in (
        ("Errors", "AWS/Lambda"),
        ("5xx", "AWS/ApiGateway"),
        ("WriteThrottleEvents", "AWS/DynamoDB"),
        ("EngineCPUUtilization", "AWS/ElastiCache"),
        ("DatabaseMemoryUsagePercentage", "AWS/ElastiCache"),
        ("ApproximateNumberOfMessagesVisible", "AWS/SQS"),
    ):
        cloudwatch.put_metric_alarm(
            AlarmName=f"{layout.alarm_prefix(ENV)}{metric.lower()}",
            MetricName=metric,
            Namespace=namespace,
            Statistic="Sum",
            Period=300,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    if record_run:  # the aggregation job ran once (Lambda publishes Invocations)
        record_metric(session, AGGREGATE, "Invocations")
    return {
        "queue": queue,
        "pool": pool,
        "api": api,
        "routes": routes,
        "redis_sg": redis_sg,
        "lambda_client": lambda_client,
    }


def record_metric(session: Any, function_name: str, metric: str) -> None:
    session.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
                "Value": 1,
            }
        ],
    )


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # moto keeps a cache cluster's VPC security groups but does not return them
    # (DescribeCacheClusters' SecurityGroups); AWS does. Expose them the way AWS shapes them.
    from moto.elasticache.models import CacheCluster

    monkeypatch.setattr(
        CacheCluster,
        "security_groups",
        property(
            lambda self: [
                {"SecurityGroupId": sg, "Status": "active"} for sg in self.security_group_ids
            ]
        ),
        raising=False,
    )
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


def by_name(checks: list[Any]) -> dict[str, Any]:
    return {c.name: c for c in checks}


def test_complete_environment_passes_every_item(session: Any) -> None:
    env = build_environment(session)
    checks = DeploymentValidator(ENV, session, user_pool_id=env["pool"]).run()
    failed = [c.line() for c in checks if not c.passed]
    assert failed == []
    names = set(by_name(checks))
    for expected in (
        "DynamoDB table alquimista-operational-commands-dev",
        "GSI tenant_id-created_at-index",
        "GSI status-created_at-index",
        "ElastiCache Redis alquimista-opdash-dev available",
        "Redis security group open only to the functions' security group",
        "14 Lambda functions deployed",
        "EventBridge rule alquimista-aggregate-metrics-daily-dev active",
        "DynamoDB stream mapping",
        "Cognito group INTERNAL_ADMIN",
        "Cognito group TENANT_USER",
        "an INTERNAL_ADMIN user exists",
        "Cognito JWT authorizer on every route",
        "X-Ray tracing active",
        "alarms configured",
        "aggregation job ran without errors (last 26 h)",
        *(f"route {r.route_key}" for r in layout.ROUTES),
    ):
        assert expected in names, expected


def test_broken_items_are_reported(session: Any) -> None:
    env = build_environment(session)
    env["lambda_client"].delete_function(FunctionName="alquimista-tenant-usage-dev")
    session.client("apigatewayv2").delete_route(
        ApiId=env["api"], RouteId=env["routes"]["GET /internal/billing/overview"]
    )
    session.client("ec2").authorize_security_group_ingress(
        GroupId=env["redis_sg"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 6379,
                "ToPort": 6379,
                "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
            }
        ],
    )
    session.client("events").disable_rule(Name=layout.aggregation_rule_name(ENV))
    session.client("dynamodb").update_time_to_live(
        TableName=layout.commands_table_name(ENV),
        TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires_at"},
    )
    session.client("sqs").send_message(QueueUrl=env["queue"], MessageBody="{}")
    checks = by_name(DeploymentValidator(ENV, session, user_pool_id=env["pool"]).run())
    failed = {name for name, check in checks.items() if not check.passed}
    assert failed == {
        "14 Lambda functions deployed",
        "route GET /internal/billing/overview",
        "Cognito JWT authorizer on every route",
        "Redis security group open only to the functions' security group",
        "EventBridge rule alquimista-aggregate-metrics-daily-dev active",
        "TTL on expires_at",
        "command stream processing without failures (last 24 h, dead-letter queue empty)",
    }
    assert "alquimista-tenant-usage-dev" in checks["14 Lambda functions deployed"].detail
    assert (
        "address range"
        in checks["Redis security group open only to the functions' security group"].detail
    )


def test_missing_environment_fails_cleanly(session: Any) -> None:
    checks = DeploymentValidator("prod", session, user_pool_id=None).run()
    assert checks and not any(c.passed for c in checks)
    names = by_name(checks)
    assert names["DynamoDB table alquimista-operational-commands-prod"].detail == "not found"
    assert "no user pool id" in names["Cognito groups"].detail


def test_cli_prints_each_item_and_exit_code(session: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    env = build_environment(session)
    monkeypatch.setenv("COGNITO_USER_POOL_ID", env["pool"])
    monkeypatch.setenv("AWS_REGION", REGION)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["deploy", "validate", "--env", ENV])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert "PASS  GSI status-created_at-index — ACTIVE" in lines
        assert lines[-1].startswith("deploy validate (dev): ")
        assert all(line.startswith("PASS  ") for line in lines[:-1])

        env["lambda_client"].delete_function(FunctionName="alquimista-process-command-dev")
        result = CliRunner().invoke(cli_app, ["deploy", "validate", "--env", ENV])
        assert result.exit_code == 1
        assert any(
            line.startswith("FAIL  14 Lambda functions deployed")
            for line in result.output.splitlines()
        )
    finally:
        get_settings.cache_clear()


def test_aggregation_not_run_yet_is_skipped_and_errors_fail(session: Any) -> None:
    build_environment(session, record_run=False)
    validator = DeploymentValidator(ENV, session)
    name = "aggregation job ran without errors (last 26 h)"
    fresh = by_name(list(validator.activity_checks()))[name]
    assert fresh.skipped and fresh.line() == f"SKIP  {name} — no run yet (daily at 02:00 UTC)"
    record_metric(session, AGGREGATE, "Invocations")
    assert by_name(list(validator.activity_checks()))[name].passed
    record_metric(session, AGGREGATE, "Errors")
    check = by_name(list(validator.activity_checks()))[name]
    assert not check.passed and check.detail == "1 runs, 1 errors"
    with pytest.raises(Exception, match=r"NonExistentQueue|does not exist"):
        list(DeploymentValidator("prod", session).activity_checks())


def test_database_checks(engine: Any, settings: Any, tmp_path: Any) -> None:
    checks = database_checks(engine, settings.db_schema)
    assert [c.line() for c in checks if not c.passed] == []
    assert {c.name for c in checks} >= {
        "table tenant_users",
        "table operational_events",
        "indexes on every dashboard table",
    }

    from alquimista_ops.core import migrate
    from alquimista_ops.core.db import create_db_engine
    from tests.conftest import create_database, drop_database

    name, url = create_database()  # an empty database: nothing migrated yet
    fresh = create_db_engine(settings, url=url)
    try:
        assert not by_name(database_checks(fresh, "alquimista_platform"))[
            "table tenant_users"
        ].passed
        migrate.upgrade(fresh, "alquimista_platform")
        with fresh.begin() as conn:
            index = sa.inspect(conn).get_indexes("operational_events", "alquimista_platform")[0]
            conn.exec_driver_sql(f'DROP INDEX "alquimista_platform"."{index["name"]}"')
        result = by_name(database_checks(fresh, "alquimista_platform"))
        assert result["table tenant_users"].passed
        assert not result["indexes on every dashboard table"].passed
        assert "operational_events" in result["indexes on every dashboard table"].detail
    finally:
        fresh.dispose()
        drop_database(name)
