"""Token verification: one code path for the built-in provider and for Cognito.

The signature is checked against the issuer's JWKS (cached; refetched at most once per
interval on an unknown ``kid``), with RS256 only: the algorithm never comes from the token.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from alquimista_ops.auth.principal import Principal
from alquimista_ops.core.errors import Unauthorized

JwksFetcher = Callable[[], dict[str, Any]]


def http_jwks_fetcher(url: str, timeout: float = 5.0) -> JwksFetcher:
    def fetch() -> dict[str, Any]:
        response = httpx.get(url, timeout=timeout)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    return fetch


class JwksCache:
    def __init__(self, fetcher: JwksFetcher, refresh_interval: float = 60.0) -> None:
        self._fetcher = fetcher
        self._refresh_interval = refresh_interval
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        document = self._fetcher()
        keys: dict[str, Any] = {}
        for jwk in document.get("keys", []):
            if jwk.get("kty") != "RSA" or jwk.get("alg", "RS256") != "RS256" or "kid" not in jwk:
                continue
            keys[jwk["kid"]] = RSAAlgorithm.from_jwk(jwk)
        self._keys = keys
        self._fetched_at = time.monotonic()

    def get(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._fetched_at >= self._refresh_interval:
                try:
                    self._refresh()
                except Exception as exc:  # network or document errors: the token is not verifiable
                    raise Unauthorized("Signing keys are unavailable") from exc
                key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("Token signed by an unknown key")
        return key


class VerifiedTokenCache:
    """Principals of recently verified tokens, keyed by the SHA-256 of the token (the token
    itself is never kept). An entry lives at most ``max_age`` seconds and never past the
    token's ``exp``; at most ``max_entries`` are kept (least recently used dropped first).
    Only successful verifications are cached: a bad token is checked again every time."""

    def __init__(self, max_entries: int = 10_000, max_age: float = 60.0) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str, now: float | None = None) -> Principal | None:
        return self.get_by_key(self.key(token), now)

    def get_by_key(self, key: bytes, now: float | None = None) -> Principal | None:
        if self.max_entries <= 0:
            return None
        now = time.time() if now is None else now
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, token: str, principal: Principal, now: float | None = None) -> None:
        if self.max_entries <= 0:
            return
        now = time.time() if now is None else now
        exp = principal.claims.get("exp")
        until = now + self.max_age
        if isinstance(exp, int | float):
            until = min(until, float(exp))
        if until <= now:
            return
        with self._lock:
            self._entries[self.key(token)] = (until, principal)
            self._entries.move_to_end(self.key(token))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        jwks: JwksCache,
        leeway: int = 0,
        verified: VerifiedTokenCache | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.jwks = jwks
        self.leeway = leeway
        # verifying RS256 on every request was the largest CPU cost of a cached read.
        self.verified = verified if verified is not None else VerifiedTokenCache()

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified a moment ago (no I/O, no signature check)."""
        return self.verified.get(token)

    def cached_bearer(self, scope: dict[str, Any]) -> tuple[bytes, Principal] | None:
        """(digest, principal) of the request's bearer token if it was verified a moment ago,
        else None; computed once per request (kept in the ASGI scope's state)."""
        state = scope.setdefault("state", {})
        if "bearer" in state:
            found: tuple[bytes, Principal] | None = state["bearer"]
            return found
        found = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                token = token.strip()
                if scheme.lower() == "bearer" and token:
                    key = self.verified.key(token)
                    principal = self.verified.get_by_key(key)
                    if principal is not None:
                        found = (key, principal)
                break
        state["bearer"] = found
        return found

    def verify(self, token: str) -> Principal:
        principal = self.verified.get(token)
        if principal is not None:
            return principal
        principal = self._verify(token)
        self.verified.put(token, principal)
        return principal

    def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed token") from exc
        if header.get("alg") != "RS256":
            raise Unauthorized("Unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("Token has no key id")
        key = self.jwks.get(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("Token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from exc
        token_use = claims.get("token_use")
        if token_use == "id":
            aud = claims.get("aud")
            audiences = aud if isinstance(aud, list) else [aud]
            if self.client_id not in audiences:
                raise Unauthorized("Token audience does not match")
        elif token_use == "access":
            if claims.get("client_id") != self.client_id:
                raise Unauthorized("Token client does not match")
        else:
            raise Unauthorized("Token use must be 'id' or 'access'")
        return principal_from_claims(claims)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    groups = claims.get("cognito:groups") or []
    if isinstance(groups, str):
        groups = [groups]
    tenant_raw = claims.get("custom:tenant_id")
    tenant_id: uuid.UUID | None = None
    if tenant_raw:
        try:
            tenant_id = uuid.UUID(str(tenant_raw))
        except ValueError as exc:
            raise Unauthorized("Token carries a malformed tenant id") from exc
    return Principal(
        sub=str(claims["sub"]),
        email=claims.get("email") or claims.get("username"),
        groups=tuple(str(g) for g in groups),
        tenant_id=tenant_id,
        token_use=str(claims.get("token_use")),
        claims=claims,
    )
