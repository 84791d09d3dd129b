"""One OpenAPI document for the whole platform, merged from each service's `/openapi.json`.

Paths get the `/api/<service>` prefix the gateway serves them under, components are
renamed `<Service>_<Name>` (every `$ref` follows), each service is one tag.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from gateway.upstreams import Upstream, Upstreams

log = logging.getLogger("gateway.openapi")

JSON = dict[str, Any]

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def component_prefix(service: str) -> str:
    """`agent-state` → `AgentState_`."""
    return "".join(part.capitalize() for part in service.replace("_", "-").split("-")) + "_"


class _Renamer:
    def __init__(self, service: str, path_prefix: str) -> None:
        self.prefix = component_prefix(service)
        self.path_pointer = path_prefix.replace("~", "~0").replace("/", "~1")

    def ref(self, ref: str) -> str:
        parts = ref.split("/")
        if len(parts) < 3 or parts[0] != "#":
            return ref  # an external document: not ours to rename
        if parts[1] == "components" and len(parts) >= 4:
            parts[3] = self.prefix + parts[3]
        elif parts[1] == "paths":
            parts[2] = self.path_pointer + parts[2]
        return "/".join(parts)

    def tree(self, node: Any) -> Any:
        if isinstance(node, dict):
            out: JSON = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    out[key] = self.ref(value)
                elif key == "discriminator" and isinstance(value, dict) and isinstance(value.get("mapping"), dict):
                    out[key] = {**value, "mapping": {k: self.ref(v) for k, v in value["mapping"].items()}}
                else:
                    out[key] = self.tree(value)
            return out
        if isinstance(node, list):
            return [self.tree(item) for item in node]
        return node

    def security(self, requirements: list[JSON]) -> list[JSON]:
        # Security requirements name schemes by key, not by $ref.
        return [{self.prefix + name: scopes for name, scopes in req.items()} for req in requirements]


def add_service(merged: JSON, service: str, spec: JSON, *, path_prefix: str) -> None:
    """Add one service's document to `merged`, prefixed and renamed."""
    renamer = _Renamer(service, path_prefix)
    operation_prefix = service.replace("-", "_") + "_"
    for kind, entries in (spec.get("components") or {}).items():
        target = merged.setdefault("components", {}).setdefault(kind, {})
        for name, value in entries.items():
            target[renamer.prefix + name] = renamer.tree(value)
    default_security = spec.get("security")
    for path, item in (spec.get("paths") or {}).items():
        item = renamer.tree(item)
        item.pop("servers", None)
        for method, operation in item.items():
            if method not in HTTP_METHODS or not isinstance(operation, dict):
                continue
            operation["tags"] = [service]
            if "operationId" in operation:
                operation["operationId"] = operation_prefix + operation["operationId"]
            if "security" in operation:
                operation["security"] = renamer.security(operation["security"])
            elif default_security:
                operation["security"] = renamer.security(default_security)
        merged["paths"][path_prefix + path] = item
    for name, item in (spec.get("webhooks") or {}).items():
        merged.setdefault("webhooks", {})[f"{service}.{name}"] = renamer.tree(item)
    info = spec.get("info") or {}
    description = info.get("description") or info.get("title") or service
    merged["tags"].append({"name": service, "description": description})


def merge_openapi(
    specs: Iterable[tuple[str, JSON]],
    *,
    unavailable: Iterable[str] = (),
    gateway_spec: JSON | None = None,
    title: str = "Call center platform",
    version: str = "0.1.0",
) -> JSON:
    merged: JSON = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": "Every service, as the gateway serves it."},
        "paths": {},
        "tags": [],
    }
    if gateway_spec is not None:
        add_service(merged, "gateway", gateway_spec, path_prefix="")
    for service, spec in specs:
        add_service(merged, service, spec, path_prefix=f"/api/{service}")
    merged["x-unavailable"] = sorted(unavailable)
    return merged


class MergedOpenApi:
    """Fetches and merges the documents, cached; a service that is down is retried sooner."""

    RETRY_UNAVAILABLE_SECONDS = 5.0

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        cache_seconds: float,
        gateway_spec: Callable[[], JSON],
        fetch_timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstreams = upstreams
        self.cache_seconds = cache_seconds
        self.gateway_spec = gateway_spec
        self.fetch_timeout = fetch_timeout_seconds
        self._clock = clock
        self._lock = asyncio.Lock()
        self._document: bytes | None = None
        self._expires_at = 0.0

    async def document(self) -> bytes:
        """The merged document as JSON bytes."""
        async with self._lock:
            if self._document is None or self._clock() >= self._expires_at:
                self._document, unavailable = await self._build()
                ttl = self.cache_seconds
                if unavailable:
                    ttl = min(ttl, self.RETRY_UNAVAILABLE_SECONDS)
                self._expires_at = self._clock() + ttl
            return self._document

    async def _build(self) -> tuple[bytes, list[str]]:
        upstreams = list(self.upstreams)
        fetched = await asyncio.gather(*(self._fetch(u) for u in upstreams))
        specs = [(u.name, spec) for u, spec in zip(upstreams, fetched, strict=True) if spec is not None]
        unavailable = [u.name for u, spec in zip(upstreams, fetched, strict=True) if spec is None]
        merged = merge_openapi(specs, unavailable=unavailable, gateway_spec=self.gateway_spec())
        return json.dumps(merged, separators=(",", ":")).encode(), unavailable

    async def _fetch(self, upstream: Upstream) -> JSON | None:
        try:
            response = await asyncio.wait_for(
                upstream.client.get(upstream.base_url + "/openapi.json"), self.fetch_timeout
            )
            if response.status_code != 200:
                log.warning("openapi of %s answered %s", upstream.name, response.status_code)
                return None
            spec = response.json()
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            log.info("openapi of %s not available: %s", upstream.name, exc)
            return None
        return spec if isinstance(spec, dict) else None
