"""Stack settings, read from CDK context (``--context key=value`` or ``cdk.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENVIRONMENTS = ("dev", "prod")


def _list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return [str(item) for item in value]


def _optional(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True)
class StackConfig:
    env_name: str
    # A directory that already holds the Lambda code (package + dependencies); None: bundle
    # the project locally (no Docker) at synth time.
    lambda_asset: str | None = None
    # Existing VPC (the document's fix for "VPC limit exceeded"): id, its AZs and the private
    # subnets the functions and Redis use. Without it the stack creates a VPC.
    vpc_id: str | None = None
    availability_zones: list[str] = field(default_factory=list)
    private_subnet_ids: list[str] = field(default_factory=list)
    # Aurora (created by the FibonacciStack). Missing values become stack parameters.
    aurora_secret_arn: str | None = None
    aurora_cluster_arn: str | None = None
    aurora_secret_kms_key_arn: str | None = None
    aurora_security_group_id: str | None = None
    # Cognito user pool and app client (FibonacciStack). Missing values become parameters.
    cognito_user_pool_id: str | None = None
    cognito_client_id: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    alarm_email: str | None = None

    def __post_init__(self) -> None:
        if self.env_name not in ENVIRONMENTS:
            raise ValueError(f"env must be one of {', '.join(ENVIRONMENTS)}: {self.env_name!r}")
        if self.vpc_id and not (self.availability_zones and self.private_subnet_ids):
            raise ValueError("vpc_id needs availability_zones and private_subnet_ids")
        if len(self.availability_zones) != len(self.private_subnet_ids) and self.vpc_id:
            raise ValueError("give one private subnet per availability zone")
        if "*" in self.cors_origins:
            raise ValueError("cors_origins may not contain '*'")

    @property
    def is_prod(self) -> bool:
        return self.env_name == "prod"

    @classmethod
    def from_context(cls, get: Any) -> StackConfig:
        """``get`` is ``app.node.try_get_context``."""
        return cls(
            env_name=str(get("env") or "dev"),
            lambda_asset=_optional(get("lambda_asset")),
            vpc_id=_optional(get("vpc_id")),
            availability_zones=_list(get("availability_zones")),
            private_subnet_ids=_list(get("private_subnet_ids")),
            aurora_secret_arn=_optional(get("aurora_secret_arn")),
            aurora_cluster_arn=_optional(get("aurora_cluster_arn")),
            aurora_secret_kms_key_arn=_optional(get("aurora_secret_kms_key_arn")),
            aurora_security_group_id=_optional(get("aurora_security_group_id")),
            cognito_user_pool_id=_optional(get("cognito_user_pool_id")),
            cognito_client_id=_optional(get("cognito_client_id")),
            cors_origins=_list(get("cors_origins")),
            alarm_email=_optional(get("alarm_email")),
        )
