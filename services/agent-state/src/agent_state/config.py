from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from callcenter_common.settings import ServiceSettings


class AgentStateSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_STATE_", extra="ignore")

    service_name: str = "agent-state"
    database_url: str = "sqlite+aiosqlite:///var/agent_state.db"

    # Ed25519 private key (PEM) that signs the JWTs; in dev/test a pair is generated under
    # `<CALLCENTER_VAR_DIR>/keys/` when neither is set, in prod a missing key is refused.
    jwt_private_key: str = ""
    jwt_private_key_file: Path | None = None
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=43_200, ge=60, le=30 * 86_400)

    login_max_failures: int = Field(default=5, ge=1, le=100)
    login_lock_minutes: int = Field(default=15, ge=1, le=24 * 60)
    password_min_length: int = Field(default=8, ge=6, le=128)
    # argon2id cost (argon2-cffi defaults, RFC 9106 low-memory profile); tests and the
    # benchmark lower them, production keeps them.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65_536, ge=8)
    password_hash_parallelism: int = Field(default=4, ge=1)

    after_call_work_seconds: int = Field(default=30, ge=0, le=3_600)
    after_call_work_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Shifts and coverage slots are local clinic time.
    timezone: str = "Asia/Shanghai"
