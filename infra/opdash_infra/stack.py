"""``OperationalDashboardStack-<env>``: what the deployment document lists.

Commands table (2 GSIs, stream, TTL, point-in-time recovery), a VPC unless an existing one is
given, ElastiCache Redis reachable only from the functions' security group, 12 route functions
and 2 job functions over one code asset, the daily EventBridge rule, the stream mapping with a
dead-letter queue, the HTTP API with a Cognito JWT authorizer on every route, least-privilege
IAM, X-Ray tracing, log retention, alarms and a CloudWatch dashboard.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import (
    BundlingOptions,
    CfnOutput,
    CfnParameter,
    DockerImage,
    Duration,
    RemovalPolicy,
    Stack,
    Tags,
)
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

import alquimista_ops.aws.layout as layout
from opdash_infra.bundling import PROJECT_ROOT, LocalPythonBundling
from opdash_infra.config import StackConfig

REDIS_PORT = 6379
POSTGRES_PORT = 5432
ROUTE_TIMEOUT = Duration.seconds(29)  # the HTTP API integration limit is 30 s
ASSET_EXCLUDES = [
    ".venv",
    ".git",
    "var",
    "docs",
    "tests",
    "bench",
    "infra",
    "*_cache",
    "**/__pycache__",
]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


class OperationalDashboardStack(Stack):
    def __init__(self, scope: Construct, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, layout.stack_name(config.env_name), **kwargs)
        self.config = config
        env = config.env_name
        Tags.of(self).add("Project", "alquimista-operational-dashboard")
        Tags.of(self).add("Environment", env)
        retain = RemovalPolicy.RETAIN if config.is_prod else RemovalPolicy.DESTROY

        secret_arn = self._value(
            config.aurora_secret_arn, "AuroraCredentialsArn", "Full ARN of the Aurora secret"
        )
        cluster_arn = self._value(
            config.aurora_cluster_arn, "AuroraClusterArn", "ARN of the Aurora cluster"
        )
        pool_id = self._value(
            config.cognito_user_pool_id, "CognitoUserPoolId", "Cognito user pool id"
        )
        client_id = self._value(
            config.cognito_client_id, "CognitoClientId", "Cognito app client id"
        )

        # -- commands table -----------------------------------------------------------------
        self.table = dynamodb.Table(
            self,
            "CommandsTable",
            table_name=layout.commands_table_name(env),
            partition_key=dynamodb.Attribute(
                name=layout.COMMANDS_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=layout.COMMANDS_SORT_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            time_to_live_attribute=layout.COMMANDS_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=config.is_prod,
            removal_policy=retain,
        )
        # The same definition as the DynamoDB command store's (layout.COMMANDS_INDEXES).
        for index_name, (partition, sort) in layout.COMMANDS_INDEXES.items():
            self.table.add_global_secondary_index(
                index_name=index_name,
                partition_key=dynamodb.Attribute(
                    name=partition, type=dynamodb.AttributeType.STRING
                ),
                sort_key=dynamodb.Attribute(name=sort, type=dynamodb.AttributeType.STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )

        # -- network ------------------------------------------------------------------------
        self.vpc = self._vpc()
        self.lambda_sg = ec2.SecurityGroup(
            self,
            "LambdaSecurityGroup",
            vpc=self.vpc,
            description=f"Operational dashboard functions ({env})",
            allow_all_outbound=True,
        )
        self.redis_sg = ec2.SecurityGroup(
            self,
            "RedisSecurityGroup",
            vpc=self.vpc,
            description=f"Operational dashboard Redis ({env}): only the functions may connect",
            allow_all_outbound=False,
        )
        self.redis_sg.add_ingress_rule(
            self.lambda_sg, ec2.Port.tcp(REDIS_PORT), "Redis from the dashboard functions"
        )
        if config.aurora_security_group_id:
            aurora_sg = ec2.SecurityGroup.from_security_group_id(
                self, "AuroraSecurityGroup", config.aurora_security_group_id, mutable=True
            )
            aurora_sg.add_ingress_rule(
                self.lambda_sg, ec2.Port.tcp(POSTGRES_PORT), "Aurora from the dashboard functions"
            )
        private = ec2.SubnetSelection(subnets=self._private_subnets())

        # -- Redis --------------------------------------------------------------------------
        subnet_group = elasticache.CfnSubnetGroup(
            self,
            "RedisSubnetGroup",
            description=f"Operational dashboard Redis ({env})",
            subnet_ids=[s.subnet_id for s in self._private_subnets()],
            cache_subnet_group_name=f"{layout.redis_group_id(env)}-subnets",
        )
        self.redis_nodes = 2 if config.is_prod else 1
        self.redis = elasticache.CfnReplicationGroup(
            self,
            "Redis",
            replication_group_id=layout.redis_group_id(env),
            replication_group_description=f"Operational dashboard cache ({env})",
            engine="redis",
            engine_version="7.1",
            cache_node_type="cache.t3.medium" if config.is_prod else "cache.t3.micro",
            num_cache_clusters=self.redis_nodes,
            automatic_failover_enabled=config.is_prod,
            multi_az_enabled=config.is_prod,
            cache_subnet_group_name=subnet_group.ref,
            security_group_ids=[self.redis_sg.security_group_id],
            port=REDIS_PORT,
            at_rest_encryption_enabled=True,
            snapshot_retention_limit=7 if config.is_prod else 0,
        )
        self.redis.apply_removal_policy(retain if config.is_prod else RemovalPolicy.DESTROY)

        # -- functions ----------------------------------------------------------------------
        environment = {
            "ENV": env,
            "AURORA_SECRET_ARN": secret_arn,
            "AURORA_CLUSTER_ARN": cluster_arn,
            "POWERTOOLS_SERVICE_NAME": layout.SERVICE_NAME,
            "REDIS_HOST": self.redis.attr_primary_end_point_address,
            "REDIS_PORT": self.redis.attr_primary_end_point_port,
            "CACHE_ENABLED": "true",
            "COMMANDS_TABLE": self.table.table_name,
            "AUTH_MODE": "cognito",
            "COGNITO_USER_POOL_ID": pool_id,
            "COGNITO_CLIENT_ID": client_id,
            "LOG_LEVEL": "INFO",
            "VAR_DIR": "/tmp/alquimista",
            # one request at a time per container: a small pool, kept across invocations
            "DB_POOL_SIZE": "2",
        }
        code = self._code()
        secret_policy = iam.PolicyStatement(
            sid="ReadAuroraSecret",
            actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            resources=[secret_arn],
        )
        self.functions: dict[str, lambda_.Function] = {}
        for route in layout.ROUTES:
            self.functions[route.name] = self._function(
                route.name, route.handler, code, environment, private, ROUTE_TIMEOUT, 512
            )
        self.functions["aggregate-metrics"] = self._function(
            layout.AGGREGATE_METRICS.name,
            layout.AGGREGATE_METRICS.handler,
            code,
            environment,
            private,
            Duration.minutes(10),
            1024,
        )
        # The document: the stream processor's timeout must be at least 5 minutes.
        self.functions["process-command"] = self._function(
            layout.PROCESS_COMMAND.name,
            layout.PROCESS_COMMAND.handler,
            code,
            environment,
            private,
            Duration.minutes(5),
            1024,
        )
        for function in self.functions.values():
            function.add_to_role_policy(secret_policy)
            if config.aurora_secret_kms_key_arn:
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="DecryptAuroraSecret",
                        actions=["kms:Decrypt"],
                        resources=[config.aurora_secret_kms_key_arn],
                    )
                )
        self.table.grant_read_write_data(self.functions["create-command"])
        self.table.grant_read_data(self.functions["list-commands"])
        self.table.grant_read_write_data(self.functions["process-command"])

        # -- daily aggregation --------------------------------------------------------------
        self.rule = events.Rule(
            self,
            "DailyAggregation",
            rule_name=layout.aggregation_rule_name(env),
            description="Roll up the previous UTC day of agent requests (02:00 UTC)",
            schedule=events.Schedule.expression(layout.AGGREGATION_SCHEDULE),
            targets=[targets.LambdaFunction(self.functions["aggregate-metrics"], retry_attempts=2)],
        )

        # -- command stream -----------------------------------------------------------------
        self.dlq = sqs.Queue(
            self,
            "ProcessCommandDlq",
            queue_name=layout.dead_letter_queue_name(env),
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.functions["process-command"].add_event_source(
            event_sources.DynamoEventSource(
                self.table,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=layout.STREAM_BATCH_SIZE,
                report_batch_item_failures=True,
                retry_attempts=5,
                max_batching_window=Duration.seconds(1),
                on_failure=event_sources.SqsDlq(self.dlq),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("INSERT"),
                            "dynamodb": {
                                "NewImage": {
                                    "status": {"S": lambda_.FilterRule.is_equal("PENDING")}
                                }
                            },
                        }
                    )
                ],
            )
        )

        # -- HTTP API -----------------------------------------------------------------------
        issuer = f"https://cognito-idp.{self.region}.amazonaws.com/{pool_id}"
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "CognitoAuthorizer",
            issuer,
            authorizer_name="cognito-jwt",
            jwt_audience=[client_id],
            identity_source=["$request.header.Authorization"],
        )
        cors = None
        if config.cors_origins:
            cors = apigw.CorsPreflightOptions(
                allow_origins=config.cors_origins,
                allow_methods=[
                    apigw.CorsHttpMethod.GET,
                    apigw.CorsHttpMethod.POST,
                    apigw.CorsHttpMethod.OPTIONS,
                ],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
                expose_headers=["X-Request-ID", "X-Cache", "Retry-After"],
                allow_credentials=True,
                max_age=Duration.hours(1),
            )
        self.api = apigw.HttpApi(
            self,
            "HttpApi",
            api_name=layout.http_api_name(env),
            description=f"AlquimistaAI Operational Dashboard API ({env})",
            cors_preflight=cors,
            create_default_stage=False,
        )
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            log_group_name=f"/aws/apigateway/{layout.http_api_name(env)}",
            retention=self._retention(),
            removal_policy=retain,
        )
        self.stage = apigw.HttpStage(
            self,
            "DefaultStage",
            http_api=self.api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(
                rate_limit=500 if config.is_prod else 50,
                burst_limit=1000 if config.is_prod else 100,
            ),
        )
        cfn_stage: apigw.CfnStage = self.stage.node.default_child  # type: ignore[assignment]
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn,
            format=(
                '{"requestId":"$context.requestId","routeKey":"$context.routeKey",'
                '"status":"$context.status","latency":"$context.integrationLatency",'
                '"sub":"$context.authorizer.claims.sub","ip":"$context.identity.sourceIp"}'
            ),
        )
        for route in layout.ROUTES:
            apigw.HttpRoute(
                self,
                f"Route{_camel(route.name)}",
                http_api=self.api,
                route_key=apigw.HttpRouteKey.with_(route.path, apigw.HttpMethod(route.method)),
                integration=integrations.HttpLambdaIntegration(
                    f"{_camel(route.name)}Integration",
                    self.functions[route.name],
                    payload_format_version=apigw.PayloadFormatVersion.VERSION_2_0,
                ),
                authorizer=self.authorizer,
            )

        self._alarms()
        self._dashboard()

        CfnOutput(self, "ApiUrl", value=self.api.api_endpoint)
        CfnOutput(self, "CommandsTableName", value=self.table.table_name)
        CfnOutput(self, "RedisEndpoint", value=self.redis.attr_primary_end_point_address)
        CfnOutput(self, "DeadLetterQueueUrl", value=self.dlq.queue_url)

    # -- helpers ----------------------------------------------------------------------------
    def _value(self, given: str | None, name: str, description: str) -> str:
        """A context value, or a CloudFormation parameter supplied at deploy time."""
        if given:
            return given
        return CfnParameter(self, name, type="String", description=description).value_as_string

    def _retention(self) -> logs.RetentionDays:
        return (
            logs.RetentionDays.THREE_MONTHS if self.config.is_prod else logs.RetentionDays.TWO_WEEKS
        )

    def _vpc(self) -> ec2.IVpc:
        config = self.config
        if config.vpc_id:
            return ec2.Vpc.from_vpc_attributes(
                self,
                "ExistingVpc",
                vpc_id=config.vpc_id,
                availability_zones=config.availability_zones,
                private_subnet_ids=config.private_subnet_ids,
            )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            vpc_name=f"alquimista-opdash-{config.env_name}",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(
                    name="private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22
                ),
            ],
        )
        vpc.add_gateway_endpoint(
            "DynamoDbEndpoint", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
        )
        return vpc

    def _private_subnets(self) -> list[ec2.ISubnet]:
        return list(self.vpc.private_subnets)

    def _code(self) -> lambda_.Code:
        if self.config.lambda_asset:
            return lambda_.Code.from_asset(self.config.lambda_asset)
        return lambda_.Code.from_asset(
            str(PROJECT_ROOT),
            exclude=ASSET_EXCLUDES,
            bundling=BundlingOptions(
                # Never pulled: the local bundler (pip, no Docker) always succeeds first.
                image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.11"),
                local=LocalPythonBundling(PROJECT_ROOT),
            ),
        )

    def _function(
        self,
        name: str,
        handler: str,
        code: lambda_.Code,
        environment: dict[str, str],
        subnets: ec2.SubnetSelection,
        timeout: Duration,
        memory: int,
    ) -> lambda_.Function:
        function_name = layout.function_name(name, self.config.env_name)
        log_group = logs.LogGroup(
            self,
            f"{_camel(name)}Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=self._retention(),
            removal_policy=RemovalPolicy.RETAIN if self.config.is_prod else RemovalPolicy.DESTROY,
        )
        return lambda_.Function(
            self,
            f"{_camel(name)}Function",
            function_name=function_name,
            runtime=lambda_.Runtime.PYTHON_3_11,
            architecture=lambda_.Architecture.X86_64,
            handler=handler,
            code=code,
            environment=environment,
            timeout=timeout,
            memory_size=memory * 2 if self.config.is_prod else memory,
            tracing=lambda_.Tracing.ACTIVE,
            vpc=self.vpc,
            vpc_subnets=subnets,
            security_groups=[self.lambda_sg],
            log_group=log_group,
        )

    def _alarms(self) -> None:
        env = self.config.env_name
        prefix = layout.alarm_prefix(env)
        self.alarm_topic = sns.Topic(
            self, "AlarmTopic", topic_name=f"{prefix}alarms", display_name="Ops dashboard alarms"
        )
        if self.config.alarm_email:
            self.alarm_topic.add_subscription(
                subscriptions.EmailSubscription(self.config.alarm_email)
            )
        action = cw_actions.SnsAction(self.alarm_topic)
        five_minutes = Duration.minutes(5)

        def alarm(
            id_: str, name: str, metric: cloudwatch.IMetric, threshold: float, description: str
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                id_,
                alarm_name=f"{prefix}{name}",
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(action)

        for name, function in self.functions.items():
            alarm(
                f"{_camel(name)}Errors",
                f"{name}-errors",
                function.metric_errors(period=five_minutes, statistic="Sum"),
                1,
                f"{function.function_name}: invocation errors",
            )
        alarm(
            "Api5xx",
            "api-5xx",
            self.api.metric_server_error(period=five_minutes, statistic="Sum"),
            5,
            "HTTP API: 5xx answers",
        )
        for kind in ("Read", "Write"):
            alarm(
                f"CommandsTable{kind}Throttles",
                f"commands-table-{kind.lower()}-throttles",
                self.table.metric(f"{kind}ThrottleEvents", period=five_minutes, statistic="Sum"),
                1,
                f"Commands table: {kind.lower()} throttles",
            )
        for node in range(1, self.redis_nodes + 1):
            cluster_id = f"{layout.redis_group_id(env)}-{node:03d}"
            for metric_name, label in (
                ("EngineCPUUtilization", "cpu"),
                ("DatabaseMemoryUsagePercentage", "memory"),
            ):
                alarm(
                    f"Redis{node}{label.capitalize()}",
                    f"redis-{node:03d}-{label}",
                    cloudwatch.Metric(
                        namespace="AWS/ElastiCache",
                        metric_name=metric_name,
                        dimensions_map={"CacheClusterId": cluster_id},
                        period=five_minutes,
                        statistic="Average",
                    ),
                    80,
                    f"Redis {cluster_id}: {label} at 80% or more",
                )
        alarm(
            "DeadLetterDepth",
            "process-command-dlq-depth",
            self.dlq.metric_approximate_number_of_messages_visible(
                period=five_minutes, statistic="Maximum"
            ),
            1,
            "Command stream batches that failed every retry are waiting in the dead-letter queue",
        )

    def _dashboard(self) -> None:
        env = self.config.env_name
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"alquimista-operational-dashboard-{env}"
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors",
                left=[f.metric_errors(statistic="Sum") for f in self.functions.values()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API 4xx / 5xx",
                left=[
                    self.api.metric_client_error(statistic="Sum"),
                    self.api.metric_server_error(statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="DynamoDB throttles",
                left=[
                    self.table.metric("ReadThrottleEvents", statistic="Sum"),
                    self.table.metric("WriteThrottleEvents", statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Redis CPU / memory",
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/ElastiCache",
                        metric_name=metric,
                        dimensions_map={"CacheClusterId": f"{layout.redis_group_id(env)}-001"},
                    )
                    for metric in ("EngineCPUUtilization", "DatabaseMemoryUsagePercentage")
                ],
                width=12,
            ),
        )
