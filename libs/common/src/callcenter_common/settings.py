"""Settings shared by every service, read from the environment only.

`PlatformSettings` (prefix ``CALLCENTER_``) holds what all services agree on: the
broker, the JWT key, the environment.  Each service subclasses `ServiceSettings`
with its own prefix (``PATIENT_``, ``ACD_`` …) for its database and its own knobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "dev", "test"})

Environment = Literal["dev", "test", "prod"]


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLCENTER_", extra="ignore")

    env: Environment = "dev"
    bus: Literal["rabbitmq", "memory"] = "rabbitmq"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    exchange: str = "callcenter.events"
    # Quorum queues survive a broker node loss and count deliveries, which is what
    # bounds the retries of a failing consumer (x-delivery-limit).
    queue_type: Literal["quorum", "classic"] = "quorum"
    consumer_max_deliveries: int = Field(default=5, ge=1)
    consumer_prefetch: int = Field(default=64, ge=1)
    consumer_retry_backoff_seconds: float = Field(default=0.2, ge=0)
    jwt_public_key: str = ""
    jwt_public_key_file: Path | None = None
    jwt_issuer: str = "callcenter.agent-state"
    jwt_audience: str = "callcenter"
    # agent-state's GET /auth/revocations: read at start-up by services that start later
    revocations_url: str = ""
    log_level: str = "INFO"
    log_json: bool = True
    var_dir: Path = Path("var")

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> PlatformSettings:
        if self.env == "prod":
            if "guest:guest@" in self.amqp_url:
                raise ValueError("CALLCENTER_AMQP_URL uses the default guest account in prod")
            if not self.jwt_public_key and self.jwt_public_key_file is None:
                raise ValueError("CALLCENTER_JWT_PUBLIC_KEY or _FILE must be set in prod")
        return self

    def load_jwt_public_key(self) -> str:
        if self.jwt_public_key:
            return self.jwt_public_key
        if self.jwt_public_key_file is not None and self.jwt_public_key_file.exists():
            return self.jwt_public_key_file.read_text()
        return ""


class ServiceSettings(BaseSettings):
    """Base of each service's settings; subclasses set ``env_prefix``."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    database_url: str = "sqlite+aiosqlite:///var/service.db"
    migrate_on_start: bool = True
    # Demo data (users, patients …) from the package's `demo.seed_demo`; never in prod.
    seed_demo: bool = False
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    def require_secret(self, name: str, value: str) -> str:
        """Return `value`, refusing a placeholder outside dev and test."""
        if self.platform.env == "prod" and value.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(f"{name} is a placeholder secret; set a real one in prod")
        return value
