"""The DynamoDB command store over moto, with the table the CDK stack defines
(``layout.commands_table_definition``): shared by the store and stream handler tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alquimista_ops.aws import layout
from alquimista_ops.aws.command_store import DynamoCommandStore

TABLE = "alquimista-operational-commands-test"


@contextmanager
def moto_commands_store() -> Iterator[DynamoCommandStore]:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(**layout.commands_table_definition(TABLE))
        client.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={
                "Enabled": True,
                "AttributeName": layout.COMMANDS_TTL_ATTRIBUTE,
            },
        )
        yield DynamoCommandStore(TABLE, client)
