"""AWS adapters: Lambda handlers, Secrets Manager, Cognito administration, deploy checks.

Everything here needs the ``aws`` extra (boto3, AWS Lambda Powertools, Mangum); the rest of
the package never imports it at module level.
"""
