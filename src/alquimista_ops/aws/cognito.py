"""Cognito administration with boto3: the four groups, the ``custom:tenant_id`` attribute
check, and creating users (with their ``tenant_users`` row for tenant groups).

The same group definitions (descriptions, precedences 1, 2, 10, 20) as the built-in identity
provider: ``auth.service.GROUP_DEFINITIONS``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from alquimista_ops.auth.service import (
    GROUP_DEFINITIONS,
    create_tenant_user_row,
    normalize_email,
    validate_tenant_for_group,
)
from alquimista_ops.aws.layout import TENANT_ID_ATTRIBUTE
from alquimista_ops.core.errors import Conflict, ValidationFailed

TENANT_ATTRIBUTE_HELP = (
    "The user pool has no custom:tenant_id attribute, so tenant users cannot be linked to "
    "their tenant. Add it once in the AWS Console: Amazon Cognito → User pools → <your pool> "
    "→ Sign-up → Custom attributes → Add custom attributes, name `tenant_id`, type String, "
    "max length 36, mutable. Then give the app client read access to it (App integration → "
    "<app client> → Attribute read and write permissions) and run this command again."
)


@dataclass(frozen=True)
class GroupsSetupReport:
    groups: list[tuple[str, str]]  # (name, "created" | "updated" | "already present")
    tenant_attribute_present: bool


def cognito_client(region: str) -> Any:
    import boto3

    return boto3.client("cognito-idp", region_name=region)


def existing_groups(client: Any, pool_id: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_groups").paginate(UserPoolId=pool_id):
        for group in page.get("Groups", []):
            groups[group["GroupName"]] = group
    return groups


def has_tenant_attribute(client: Any, pool_id: str) -> bool:
    pool = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    names = {attr.get("Name") for attr in pool.get("SchemaAttributes", [])}
    return TENANT_ID_ATTRIBUTE in names


def setup_groups(client: Any, pool_id: str) -> GroupsSetupReport:
    """Create the four groups, or bring their description and precedence up to date."""
    present = existing_groups(client, pool_id)
    results: list[tuple[str, str]] = []
    for definition in GROUP_DEFINITIONS:
        current = present.get(definition.name)
        wanted = {
            "GroupName": definition.name,
            "UserPoolId": pool_id,
            "Description": definition.description,
            "Precedence": definition.precedence,
        }
        if current is None:
            client.create_group(**wanted)
            results.append((definition.name, "created"))
        elif (
            current.get("Description") != definition.description
            or current.get("Precedence") != definition.precedence
        ):
            client.update_group(**wanted)
            results.append((definition.name, "updated"))
        else:
            results.append((definition.name, "already present"))
    return GroupsSetupReport(results, has_tenant_attribute(client, pool_id))


@dataclass(frozen=True)
class CognitoUser:
    username: str
    sub: str
    email: str
    group: str
    tenant_id: uuid.UUID | None


def create_user(
    conn: Connection,
    client: Any,
    pool_id: str,
    *,
    email: str,
    full_name: str,
    group: str,
    tenant_id: uuid.UUID | None = None,
    temporary_password: str | None = None,
    send_invitation: bool = True,
) -> CognitoUser:
    """Create the Cognito user, add it to its group and, for a tenant group, write its
    ``tenant_users`` row (``cognito_sub`` = the user's Cognito ``sub``). The caller owns the
    database transaction; a failure after the Cognito user exists deletes it again."""
    email = normalize_email(email)
    full_name = full_name.strip()
    if not full_name:
        raise ValidationFailed("A name is required", details={"field": "name"})
    validate_tenant_for_group(conn, group, tenant_id)
    if tenant_id is not None and not has_tenant_attribute(client, pool_id):
        raise ValidationFailed(TENANT_ATTRIBUTE_HELP, details={"field": "tenant_id"})
    attributes = [
        {"Name": "email", "Value": email},
        {"Name": "email_verified", "Value": "true"},
        {"Name": "name", "Value": full_name},
    ]
    if tenant_id is not None:
        attributes.append({"Name": TENANT_ID_ATTRIBUTE, "Value": str(tenant_id)})
    request: dict[str, Any] = {
        "UserPoolId": pool_id,
        "Username": email,
        "UserAttributes": attributes,
        "DesiredDeliveryMediums": ["EMAIL"],
    }
    if temporary_password:
        request["TemporaryPassword"] = temporary_password
    if not send_invitation:
        request["MessageAction"] = "SUPPRESS"
    try:
        created = client.admin_create_user(**request)["User"]
    except client.exceptions.UsernameExistsException as exc:
        raise Conflict(
            f"A Cognito user {email} already exists", details={"field": "email"}
        ) from exc
    username = created["Username"]
    sub = next((a["Value"] for a in created.get("Attributes", []) if a.get("Name") == "sub"), None)
    try:
        if sub is None:
            user = client.admin_get_user(UserPoolId=pool_id, Username=username)
            sub = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
        client.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
        if tenant_id is not None:
            create_tenant_user_row(
                conn, tenant_id=tenant_id, sub=sub, email=email, full_name=full_name, group=group
            )
    except Exception:
        client.admin_delete_user(UserPoolId=pool_id, Username=username)
        raise
    return CognitoUser(username, sub, email, group, tenant_id)
