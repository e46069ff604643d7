"""The built-in identity provider (token endpoint, JWKS) and token verification.

Every forged or invalid token must be rejected with 401 and the JSON error body; a valid token
whose groups are all unknown is 403.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from alquimista_ops.auth.keys import generate_key
from alquimista_ops.core.errors import Unauthorized
from alquimista_ops.demo.seed import SeedReport
from alquimista_ops.runtime import Runtime
from tests.conftest import auth

DEMO_PASSWORDS = {
    "INTERNAL_ADMIN": "admin-demo-123",
    "INTERNAL_SUPPORT": "suporte-demo-123",
    "TENANT_ADMIN": "gestor-demo-123",
    "TENANT_USER": "usuario-demo-123",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def decode_part(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return value


def sign_in(client: TestClient, email: str, password: str) -> Any:
    return client.post("/auth/token", data={"username": email, "password": password})


def account(report: SeedReport, group: str) -> tuple[str, str]:
    for grp, email, password in report.accounts:
        if grp == group:
            return email, password
    raise AssertionError(f"no demo account for {group}")


# -- token endpoint ------------------------------------------------------------------------


def test_token_endpoint_returns_cognito_shaped_tokens(
    client: TestClient, demo_data: SeedReport, runtime: Runtime
) -> None:
    email, password = account(demo_data, "TENANT_ADMIN")
    before = int(time.time())
    response = sign_in(client, email, password)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "id_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == runtime.settings.token_ttl_seconds

    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] == runtime.idp.key.kid  # type: ignore[union-attr]
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    for claim in (
        "iss",
        "aud",
        "token_use",
        "sub",
        "email",
        "cognito:groups",
        "custom:tenant_id",
        "exp",
        "iat",
        "auth_time",
    ):
        assert claim in claims, claim
    assert claims["iss"] == runtime.settings.issuer
    assert claims["aud"] == runtime.settings.client_id
    assert claims["token_use"] == "id"
    assert claims["email"] == email
    assert claims["cognito:groups"] == ["TENANT_ADMIN"]
    assert claims["custom:tenant_id"] == str(demo_data.demo_tenant_id)
    assert uuid.UUID(claims["sub"])
    assert before <= claims["iat"] <= claims["auth_time"] + 1
    assert claims["exp"] == claims["iat"] + runtime.settings.token_ttl_seconds

    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["token_use"] == "access"
    assert access["client_id"] == runtime.settings.client_id
    assert access["sub"] == claims["sub"]
    assert "aud" not in access


def test_internal_token_has_no_tenant_claim(client: TestClient, demo_data: SeedReport) -> None:
    email, password = account(demo_data, "INTERNAL_SUPPORT")
    response = sign_in(client, email, password)
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["id_token"], options={"verify_signature": False})
    assert claims["cognito:groups"] == ["INTERNAL_SUPPORT"]
    assert "custom:tenant_id" not in claims


def test_wrong_password_and_unknown_user_get_the_same_401(
    client: TestClient, demo_data: SeedReport
) -> None:
    email, _password = account(demo_data, "TENANT_USER")
    wrong = sign_in(client, email, "not-the-password")
    unknown = sign_in(client, "nobody@example.com", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"] == "INVALID_CREDENTIALS"
    assert "access_token" not in wrong.text


def test_token_endpoint_validates_its_form(client: TestClient, demo_data: SeedReport) -> None:
    email, password = account(demo_data, "TENANT_USER")
    missing = client.post("/auth/token", data={"username": email})
    assert missing.status_code == 400
    assert "password" in missing.json()["message"]
    grant = client.post(
        "/auth/token", data={"username": email, "password": password, "grant_type": "magic"}
    )
    assert grant.status_code == 400
    assert [d["field"] for d in grant.json()["details"]] == ["grant_type"]


def test_jwks_serves_the_signing_key(client: TestClient, runtime: Runtime) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    jwk = keys[0]
    assert jwk["kty"] == "RSA"
    assert jwk["alg"] == "RS256"
    assert jwk["use"] == "sig"
    assert jwk["kid"] == runtime.idp.key.kid  # type: ignore[union-attr]
    assert "d" not in jwk and "p" not in jwk  # public parts only
    # The published key verifies a token the provider issued.
    public_key = jwt.PyJWK(jwk).key
    token = runtime.idp.issue_tokens(  # type: ignore[union-attr]
        _local_account("TENANT_USER", uuid.uuid4())
    )["id_token"]
    claims = jwt.decode(
        token, public_key, algorithms=["RS256"], audience=runtime.settings.client_id
    )
    assert claims["token_use"] == "id"
    # The issuer-relative path serves the same document.
    assert client.get("/local-idp/.well-known/jwks.json").json() == response.json()


def _local_account(group: str, tenant_id: uuid.UUID | None) -> Any:
    from alquimista_ops.auth.local_idp import LocalAccount

    return LocalAccount(uuid.uuid4(), "someone@example.com", "Someone", group, tenant_id)


# -- verification: every bad token is 401 ---------------------------------------------------


def base_claims(runtime: Runtime, tenant_id: uuid.UUID | None, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": runtime.settings.issuer,
        "aud": runtime.settings.client_id,
        "token_use": "id",
        "sub": str(uuid.uuid4()),
        "email": "forger@example.com",
        "cognito:groups": ["TENANT_ADMIN"],
        "iat": now,
        "auth_time": now,
        "exp": now + 600,
    }
    if tenant_id is not None:
        claims["custom:tenant_id"] = str(tenant_id)
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign_rs256(runtime: Runtime, claims: dict[str, Any], **header: Any) -> str:
    key = runtime.idp.key  # type: ignore[union-attr]
    headers = {"kid": key.kid, **header}
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers=headers)


def public_pem(runtime: Runtime) -> bytes:
    return runtime.idp.key.private_key.public_key().public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def forge_unsigned(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": runtime.idp.key.kid}  # type: ignore[union-attr]
    return f"{b64url_json(header)}.{b64url_json(base_claims(runtime, tenant_id))}."


def forge_hs256_with_public_key(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": runtime.idp.key.kid}  # type: ignore[union-attr]
    signing_input = f"{b64url_json(header)}.{b64url_json(base_claims(runtime, tenant_id))}"
    mac = hmac.new(public_pem(runtime), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def forge_other_key_same_kid(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(
        base_claims(runtime, tenant_id),
        pem,
        algorithm="RS256",
        headers={"kid": runtime.idp.key.kid},  # type: ignore[union-attr]
    )


def forge_unknown_kid(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    other = generate_key()
    return jwt.encode(
        base_claims(runtime, tenant_id),
        other.private_key,
        algorithm="RS256",
        headers={"kid": other.kid},
    )


def forge_altered_payload(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    token = sign_rs256(runtime, base_claims(runtime, tenant_id))
    header, payload, signature = token.split(".")
    claims = decode_part(payload)
    claims["cognito:groups"] = ["INTERNAL_ADMIN"]
    claims.pop("custom:tenant_id", None)
    return f"{header}.{b64url_json(claims)}.{signature}"


def forge_access_wrong_client(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    claims = base_claims(runtime, tenant_id, token_use="access", aud=None, client_id="other-app")
    return sign_rs256(runtime, claims)


def forge_access_without_client(runtime: Runtime, tenant_id: uuid.UUID) -> str:
    claims = base_claims(runtime, tenant_id, token_use="access", aud=None)
    return sign_rs256(runtime, claims)


def _signed(**changes: Any) -> Callable[[Runtime, uuid.UUID], str]:
    def make(runtime: Runtime, tenant_id: uuid.UUID) -> str:
        return sign_rs256(runtime, base_claims(runtime, tenant_id, **changes))

    return make


FORGERIES: dict[str, Callable[[Runtime, uuid.UUID], str]] = {
    "malformed": lambda _r, _t: "not-a-jwt",
    "garbage_segments": lambda _r, _t: "abc.def.ghi",
    "alg_none": forge_unsigned,
    "hs256_with_public_key": forge_hs256_with_public_key,
    "other_key_same_kid": forge_other_key_same_kid,
    "unknown_kid": forge_unknown_kid,
    "no_kid": lambda r, t: jwt.encode(
        base_claims(r, t),
        r.idp.key.private_key,  # type: ignore[union-attr]
        algorithm="RS256",
    ),
    "expired": _signed(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
    "no_exp": _signed(exp=None),
    "wrong_iss": _signed(iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_evil"),
    "no_iss": _signed(iss=None),
    "wrong_aud": _signed(aud="another-client"),
    "no_aud": _signed(aud=None),
    "access_wrong_client_id": forge_access_wrong_client,
    "access_no_client_id": forge_access_without_client,
    "token_use_refresh": _signed(token_use="refresh"),
    "no_token_use": _signed(token_use=None),
    "altered_payload": forge_altered_payload,
    "rs512_with_the_real_key": lambda r, t: jwt.encode(
        base_claims(r, t),
        r.idp.key.private_key,  # type: ignore[union-attr]
        algorithm="RS512",
        headers={"kid": r.idp.key.kid},  # type: ignore[union-attr]
    ),
    "malformed_tenant_claim": _signed(**{"custom:tenant_id": "not-a-uuid"}),
}


def test_no_token_is_401(client: TestClient, demo_data: SeedReport) -> None:
    response = client.get("/tenant/me")
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc"])
def test_bad_authorization_header_is_401(
    client: TestClient, demo_data: SeedReport, header: str
) -> None:
    response = client.get("/tenant/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_invalid_token_is_401(
    client: TestClient, runtime: Runtime, demo_data: SeedReport, name: str
) -> None:
    assert demo_data.demo_tenant_id is not None
    token = FORGERIES[name](runtime, demo_data.demo_tenant_id)
    response = client.get("/tenant/me", headers=auth(token))
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "UNAUTHORIZED"
    assert set(body) == {"error", "message", "details"}


def test_the_control_token_is_accepted(
    client: TestClient, runtime: Runtime, demo_data: SeedReport
) -> None:
    """The forgeries above differ from this valid token only in what they break."""
    assert demo_data.demo_tenant_id is not None
    token = sign_rs256(runtime, base_claims(runtime, demo_data.demo_tenant_id))
    response = client.get("/tenant/me", headers=auth(token))
    assert response.status_code == 200, response.text
    access = sign_rs256(
        runtime,
        base_claims(
            runtime,
            demo_data.demo_tenant_id,
            token_use="access",
            aud=None,
            client_id=runtime.settings.client_id,
        ),
    )
    assert client.get("/tenant/me", headers=auth(access)).status_code == 200


@pytest.mark.parametrize("groups", [[], ["ADMINS"], "SOMETHING_ELSE"])
def test_valid_token_without_known_group_is_403(
    client: TestClient, runtime: Runtime, demo_data: SeedReport, groups: Any
) -> None:
    assert demo_data.demo_tenant_id is not None
    claims = base_claims(runtime, demo_data.demo_tenant_id, **{"cognito:groups": groups})
    response = client.get("/tenant/me", headers=auth(sign_rs256(runtime, claims)))
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "NO_GROUP"


@pytest.mark.parametrize("kind", ["id", "access"])
@pytest.mark.parametrize("group", ["TENANT_ADMIN", "TENANT_USER", "INTERNAL_ADMIN"])
def test_signed_in_tokens_of_both_kinds_work(
    client: TestClient, demo_data: SeedReport, kind: str, group: str
) -> None:
    email, password = account(demo_data, group)
    tokens = sign_in(client, email, password).json()
    params = {} if group.startswith("TENANT") else {"tenant_id": str(demo_data.demo_tenant_id)}
    response = client.get("/tenant/me", headers=auth(tokens[f"{kind}_token"]), params=params)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == str(demo_data.demo_tenant_id)


# -- JWKS cache and Cognito mode ---------------------------------------------------------


class CountingFetcher:
    def __init__(self, *keys: Any) -> None:
        self.keys = list(keys)
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"keys": [k.public_jwk for k in self.keys]}


def test_jwks_is_cached_and_refetched_at_most_once_per_interval_on_unknown_kid() -> None:
    from alquimista_ops.auth.verifier import JwksCache, TokenVerifier

    old, new = generate_key(), generate_key()
    fetcher = CountingFetcher(old)
    cache = JwksCache(fetcher, refresh_interval=3600)
    verifier = TokenVerifier(issuer="https://issuer.example", client_id="app", jwks=cache)

    def token(key: Any) -> str:
        claims = {
            "iss": "https://issuer.example",
            "aud": "app",
            "token_use": "id",
            "sub": "user-1",
            "cognito:groups": ["INTERNAL_SUPPORT"],
            "exp": int(time.time()) + 60,
        }
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    for _ in range(3):
        assert verifier.verify(token(old)).sub == "user-1"
    assert fetcher.calls == 1  # cached

    fetcher.keys.append(new)  # the issuer rotates keys, but the interval has not passed
    for _ in range(3):
        with pytest.raises(Unauthorized):
            verifier.verify(token(new))
    assert fetcher.calls == 1  # an unknown kid does not hammer the JWKS endpoint

    cache._fetched_at -= 3600  # the interval passes
    assert verifier.verify(token(new)).groups == ("INTERNAL_SUPPORT",)
    assert fetcher.calls == 2
    assert verifier.verify(token(old)).sub == "user-1"
    assert fetcher.calls == 2


def test_jwks_fetch_failure_is_401(tmp_path: Any) -> None:
    from alquimista_ops.auth.verifier import JwksCache, TokenVerifier

    def broken() -> dict[str, Any]:
        raise OSError("network down")

    key = generate_key()
    verifier = TokenVerifier(
        issuer="https://issuer.example", client_id="app", jwks=JwksCache(broken)
    )
    claims = {"iss": "https://issuer.example", "aud": "app", "token_use": "id", "sub": "u",
              "exp": int(time.time()) + 60}  # fmt: skip
    forged = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    with pytest.raises(Unauthorized, match="Signing keys are unavailable"):
        verifier.verify(forged)


def test_cognito_mode_points_the_same_verifier_at_the_user_pool(
    tmp_path: Any, pg_database: str
) -> None:
    from alquimista_ops.app import create_app
    from alquimista_ops.core.settings import Settings
    from alquimista_ops.runtime import build_runtime

    settings = Settings(
        ENV="test",
        AUTH_MODE="cognito",
        COGNITO_USER_POOL_ID="sa-east-1_AbCdEf123",
        COGNITO_CLIENT_ID="client-123",
        AWS_REGION="sa-east-1",
        DATABASE_URL=pg_database,
        VAR_DIR=str(tmp_path),
    )
    runtime = build_runtime(settings)
    try:
        issuer = "https://cognito-idp.sa-east-1.amazonaws.com/sa-east-1_AbCdEf123"
        assert runtime.idp is None
        assert runtime.verifier.issuer == issuer
        assert runtime.verifier.client_id == "client-123"
        assert settings.jwks_url == f"{issuer}/.well-known/jwks.json"
        with TestClient(create_app(runtime=runtime)) as client:
            # No built-in provider: no token endpoint, no local JWKS.
            response = client.post("/auth/token", data={"username": "a", "password": "b"})
            assert response.status_code == 404
            assert client.get("/.well-known/jwks.json").status_code == 404
    finally:
        runtime.close()
