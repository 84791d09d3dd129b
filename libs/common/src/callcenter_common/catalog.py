"""The services of the platform: URL name, Python package and default port."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str  # URL and queue name: /api/<name>/…, queues <name>.<purpose>
    package: str  # import name; its `main.create_app(settings=None, *, bus=None)` builds the app
    port: int  # default port of its own process in the full stack

    @property
    def env_prefix(self) -> str:
        return self.package.upper() + "_"


SERVICES: tuple[ServiceInfo, ...] = (
    ServiceInfo("acd", "acd", 8001),
    ServiceInfo("ivr", "ivr", 8002),
    ServiceInfo("recording", "recording", 8003),
    ServiceInfo("agent-state", "agent_state", 8004),
    ServiceInfo("workorder", "workorder", 8005),
    ServiceInfo("patient", "patient", 8006),
    ServiceInfo("messaging", "messaging", 8007),
    ServiceInfo("reporting", "reporting", 8008),
)

GATEWAY_PORT = 8000


def service(name: str) -> ServiceInfo:
    for info in SERVICES:
        if info.name == name:
            return info
    raise KeyError(name)
