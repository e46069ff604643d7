#!/usr/bin/env python3
"""CDK entry point: ``cdk synth OperationalDashboardStack-dev --context env=dev``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aws_cdk as cdk
from opdash_infra.config import StackConfig
from opdash_infra.stack import OperationalDashboardStack


def build(app: cdk.App) -> OperationalDashboardStack:
    config = StackConfig.from_context(app.node.try_get_context)
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    region = os.environ.get("CDK_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    env = cdk.Environment(account=account, region=region) if region else None
    return OperationalDashboardStack(app, config, env=env)


if __name__ == "__main__":
    application = cdk.App()
    build(application)
    application.synth()
