"""AWS adapters: Lambda handlers, Secrets Manager, Cognito administration, deploy checks.

Everything here needs the ``aws`` extra (boto3, AWS Lambda Powertools, Mangum). Importing the
package plugs the AWS pieces into the core and the features: ``AURORA_SECRET_ARN`` is read from
Secrets Manager (``aurora``) and ``COMMANDS_TABLE`` keeps the commands in DynamoDB
(``command_store``). The entry points that may run on AWS (the Lambda handlers, the command
line, the app factory) import it.
"""

from alquimista_ops.aws.aurora import database_url_from_secret
from alquimista_ops.aws.command_store import dynamodb_store
from alquimista_ops.commands.runtime_hooks import keep_commands_on_dynamodb_with
from alquimista_ops.core.settings import read_database_secrets_with

read_database_secrets_with(database_url_from_secret)
keep_commands_on_dynamodb_with(dynamodb_store)
