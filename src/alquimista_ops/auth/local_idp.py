"""Built-in identity provider: issues Cognito-shaped RS256 tokens for local accounts."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from alquimista_ops.auth.keys import SigningKey, jwks_document


@dataclass(frozen=True)
class LocalAccount:
    id: uuid.UUID
    email: str
    full_name: str
    group_name: str
    tenant_id: uuid.UUID | None


class LocalIdentityProvider:
    def __init__(self, key: SigningKey, *, issuer: str, client_id: str, ttl_seconds: int) -> None:
        self.key = key
        self.issuer = issuer
        self.client_id = client_id
        self.ttl_seconds = ttl_seconds

    def jwks(self) -> dict[str, Any]:
        return jwks_document([self.key])

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self.key.private_key, algorithm="RS256", headers={"kid": self.key.kid}
        )

    def issue_tokens(self, account: LocalAccount, now: int | None = None) -> dict[str, Any]:
        now = int(time.time()) if now is None else now
        common: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(account.id),
            "cognito:groups": [account.group_name],
            "iat": now,
            "auth_time": now,
            "exp": now + self.ttl_seconds,
        }
        if account.tenant_id is not None:
            common["custom:tenant_id"] = str(account.tenant_id)
        id_claims = {
            **common,
            "aud": self.client_id,
            "token_use": "id",
            "email": account.email,
            "email_verified": True,
            "name": account.full_name,
            "cognito:username": account.email,
        }
        access_claims = {
            **common,
            "client_id": self.client_id,
            "token_use": "access",
            "scope": "openid email profile",
            "username": account.email,
            "jti": str(uuid.uuid4()),
        }
        return {
            "access_token": self._sign(access_claims),
            "id_token": self._sign(id_claims),
            "token_type": "Bearer",
            "expires_in": self.ttl_seconds,
        }
