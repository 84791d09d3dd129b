"""JWT verification for every service, and token minting for agent-state and tests.

Tokens are EdDSA (Ed25519): agent-state keeps the private key, every other service
only the public one.  Revocation (forced logout, password change) travels as the
`auth.tokens_revoked` event; each service keeps a `RevocationList` fed by it, so a
revoked token fails on the next call to any service, not only agent-state.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Depends, Request

from callcenter_common.events import Event
from callcenter_common.problems import ProblemError

ALGORITHM = "EdDSA"

log = logging.getLogger("callcenter.auth")

# Roles of AGENT-25 / WO-1; services compare against these names.
ROLE_DIRECTOR = "director"
ROLE_MANAGER = "manager"
ROLE_SUPERVISOR = "supervisor"
ROLE_TEAM_LEAD = "team_lead"
ROLE_AGENT = "agent"
ROLE_ADMIN = "admin"
SUPERVISING_ROLES = frozenset({ROLE_DIRECTOR, ROLE_MANAGER, ROLE_SUPERVISOR, ROLE_TEAM_LEAD, ROLE_ADMIN})


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as the token says."""

    user_id: str
    work_number: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    session_id: str = ""
    issued_at: float = 0.0
    extension: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def sees_everyone(self) -> bool:
        return self.has_role(ROLE_DIRECTOR, ROLE_ADMIN, ROLE_SUPERVISOR)


class TokensRevoked(Event):
    """Tokens of `user_id` issued before `not_before` (or of one session) are no longer valid."""

    name: ClassVar[str] = "auth.tokens_revoked"

    user_id: str
    not_before: float
    session_id: str | None = None
    reason: str = ""


class RevocationList:
    """In-memory: per user, tokens issued before a time are void; per session, all are."""

    def __init__(self) -> None:
        self._user_not_before: dict[str, float] = {}
        self._sessions: dict[str, float] = {}

    def apply(self, event: TokensRevoked) -> None:
        if event.session_id:
            self._sessions[event.session_id] = event.not_before
        else:
            previous = self._user_not_before.get(event.user_id, 0.0)
            self._user_not_before[event.user_id] = max(previous, event.not_before)

    def is_revoked(self, principal: Principal) -> bool:
        if principal.session_id and principal.session_id in self._sessions:
            return True
        return principal.issued_at < self._user_not_before.get(principal.user_id, 0.0)


async def load_revocations(url: str, revocations: RevocationList, *, attempts: int = 30) -> int:
    """Apply the revocations still in force that agent-state lists at `url` (for a service that
    starts after they were published); retries while agent-state is not up. Returns how many."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            applied = 0
            cursor: str | None = None
            async with httpx.AsyncClient(timeout=5) as client:
                while True:
                    params: dict[str, str | int] = {"limit": 500}
                    if cursor:
                        params["cursor"] = cursor
                    response = await client.get(url, params=params)
                    response.raise_for_status()
                    page = response.json()
                    for item in page["items"]:
                        revocations.apply(TokensRevoked.model_validate(item))
                        applied += 1
                    cursor = page.get("next_cursor")
                    if not cursor:
                        return applied
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            if attempt == attempts:
                raise
            log.warning("revocations not loaded from %s (%s); retrying", url, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    return 0


def generate_keypair() -> tuple[str, str]:
    """A fresh Ed25519 key pair as (private PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


class TokenIssuer:
    def __init__(self, private_key_pem: str, *, issuer: str, audience: str) -> None:
        self._key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        self.issuer = issuer
        self.audience = audience

    def issue(
        self,
        *,
        user_id: str,
        work_number: str,
        roles: Iterable[str] = (),
        groups: Iterable[str] = (),
        permissions: Iterable[str] = (),
        session_id: str | None = None,
        extension: str | None = None,
        ttl_seconds: int = 900,
        now: float | None = None,
    ) -> str:
        issued = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "wn": work_number,
            "roles": sorted(roles),
            "groups": sorted(groups),
            "perms": sorted(permissions),
            "sid": session_id or uuid.uuid4().hex,
            "iat": issued,
            "exp": int(issued + ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        if extension:
            claims["ext"] = extension
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)  # type: ignore[arg-type]


class TokenVerifier:
    def __init__(
        self,
        public_key_pem: str,
        *,
        issuer: str,
        audience: str,
        revocations: RevocationList | None = None,
        leeway_seconds: float = 5,
    ) -> None:
        self._key = serialization.load_pem_public_key(public_key_pem.encode()) if public_key_pem else None
        self.issuer = issuer
        self.audience = audience
        self.revocations = revocations or RevocationList()
        self.leeway = leeway_seconds

    def verify(self, token: str) -> Principal:
        if self._key is None:
            raise _unauthenticated("this service has no token key configured")
        try:
            claims = jwt.decode(
                token,
                self._key,  # type: ignore[arg-type]
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _unauthenticated("the token has expired", code="auth.token_expired") from exc
        except jwt.PyJWTError as exc:
            raise _unauthenticated("the token is not valid", code="auth.token_invalid") from exc
        principal = Principal(
            user_id=str(claims["sub"]),
            work_number=str(claims.get("wn", "")),
            roles=frozenset(claims.get("roles", ())),
            groups=frozenset(str(g) for g in claims.get("groups", ())),
            permissions=frozenset(claims.get("perms", ())),
            session_id=str(claims.get("sid", "")),
            issued_at=float(claims["iat"]),
            extension=claims.get("ext"),
            claims=claims,
        )
        if self.revocations.is_revoked(principal):
            raise _unauthenticated("the token has been revoked", code="auth.token_revoked")
        return principal


def _unauthenticated(detail: str, code: str = "auth.unauthenticated") -> ProblemError:
    return ProblemError(401, code, "Authentication required", detail=detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return None


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the verified caller, or 401 (async: no trip through the thread pool)."""
    token = bearer_token(request)
    if token is None:
        raise _unauthenticated("a bearer token is required")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = verifier.verify(token)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_permission(permission: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise ProblemError(403, "auth.forbidden", "Permission required", detail=permission)
        return principal

    return dependency


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_role(*roles):
            raise ProblemError(403, "auth.forbidden", "Role required", detail=" or ".join(roles))
        return principal

    return dependency
