"""Password hashes (argon2id), opaque refresh tokens, and the JWT signing key."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent_state.config import AgentStateSettings
from callcenter_common.auth import generate_keypair

log = logging.getLogger("agent_state.security")

DEV_PRIVATE_KEY_NAME = "agent-state-jwt-private.pem"
DEV_PUBLIC_KEY_NAME = "jwt-public.pem"


class Passwords:
    """argon2id hashing off the event loop (each hash costs tens of milliseconds by design)."""

    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
        # Unknown work numbers are checked against this, so they take as long as known ones.
        self._decoy = self._hasher.hash(secrets.token_hex(16))

    @classmethod
    def from_settings(cls, settings: AgentStateSettings) -> Passwords:
        return cls(
            time_cost=settings.password_hash_time_cost,
            memory_kib=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        )

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, password_hash or self._decoy, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    # The token is 256 random bits: a plain digest is enough, no salt or slow hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


class SigningKeys:
    def __init__(self, private_pem: str) -> None:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the JWT private key must be an Ed25519 key")
        self.private_pem = private_pem
        self.public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def matches(self, public_pem: str) -> bool:
        other = serialization.load_pem_public_key(public_pem.encode())
        return isinstance(other, Ed25519PublicKey) and _raw(other) == _raw(
            serialization.load_pem_public_key(self.public_pem.encode())
        )


def _raw(key: object) -> bytes:
    assert isinstance(key, Ed25519PublicKey)
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_signing_keys(settings: AgentStateSettings) -> SigningKeys:
    """The configured key; in dev/test a generated one kept under var/keys/; refused missing in prod."""
    platform = settings.platform
    if settings.jwt_private_key:
        keys = SigningKeys(settings.jwt_private_key)
    elif settings.jwt_private_key_file is not None:
        if not settings.jwt_private_key_file.exists():
            raise ValueError(f"AGENT_STATE_JWT_PRIVATE_KEY_FILE {settings.jwt_private_key_file} does not exist")
        keys = SigningKeys(settings.jwt_private_key_file.read_text())
    elif platform.env == "prod":
        raise ValueError("AGENT_STATE_JWT_PRIVATE_KEY or _FILE must be set in prod")
    else:
        keys = _dev_keys(settings)
    configured_public = platform.load_jwt_public_key()
    if configured_public and not keys.matches(configured_public):
        raise ValueError("CALLCENTER_JWT_PUBLIC_KEY does not belong to AGENT_STATE_JWT_PRIVATE_KEY")
    return keys


def _dev_keys(settings: AgentStateSettings) -> SigningKeys:
    platform = settings.platform
    key_dir = platform.var_dir / "keys"
    private_path = key_dir / DEV_PRIVATE_KEY_NAME
    if private_path.exists():
        keys = SigningKeys(private_path.read_text())
    else:
        private_pem, _ = generate_keypair()
        _write_private(private_path, private_pem)
        keys = SigningKeys(private_pem)
        log.warning("generated a development JWT key pair in %s", key_dir)
    public_path = platform.jwt_public_key_file or key_dir / DEV_PUBLIC_KEY_NAME
    if not public_path.exists() or public_path.read_text() != keys.public_pem:
        public_path.parent.mkdir(parents=True, exist_ok=True)
        public_path.write_text(keys.public_pem)
    return keys


def _write_private(path: Path, pem: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(pem)
