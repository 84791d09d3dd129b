"""Settings of the gateway (prefix ``GATEWAY_``); the platform's own come from ``CALLCENTER_``."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callcenter_common.catalog import SERVICES
from callcenter_common.settings import PlatformSettings


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    # Base URL of each service; one not named here gets the template, filled with the
    # catalog's `name` and `port` (in Kubernetes e.g. "http://{name}:8000").
    service_urls: dict[str, str] = Field(default_factory=dict)
    service_url_template: str = "http://127.0.0.1:{port}"
    cors_origins: list[str] = Field(default_factory=list)
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    upstream_max_connections: int = Field(default=256, ge=1)
    openapi_cache_seconds: float = Field(default=60.0, ge=0)
    push_replay_max_events: int = Field(default=10_000, ge=1)
    push_replay_seconds: float = Field(default=120.0, gt=0)
    push_queue_size: int = Field(default=1_000, ge=1)
    push_heartbeat_seconds: float = Field(default=25.0, gt=0)
    platform: PlatformSettings = Field(default_factory=PlatformSettings)

    @field_validator("service_urls")
    @classmethod
    def _known_services(cls, urls: dict[str, str]) -> dict[str, str]:
        known = {s.name for s in SERVICES}
        unknown = sorted(set(urls) - known)
        if unknown:
            raise ValueError(f"unknown services {unknown}; known: {sorted(known)}")
        return urls

    def service_url(self, name: str) -> str:
        if name in self.service_urls:
            return self.service_urls[name].rstrip("/")
        info = next(s for s in SERVICES if s.name == name)
        return self.service_url_template.format(name=info.name, port=info.port).rstrip("/")
