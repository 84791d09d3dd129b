"""Where each service is reached: in-process through `httpx.ASGITransport`, or over pooled HTTP/1.1."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import httpx
from starlette.types import ASGIApp

from callcenter_common.catalog import SERVICES
from gateway.config import GatewaySettings
from gateway.http11 import Http11Pool, Origin, Timeouts


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base_url: str  # no trailing slash
    client: httpx.AsyncClient  # the gateway's own calls; in embedded mode the proxy's too
    pool: Http11Pool | None  # over HTTP: the proxy's hot path
    origin: Origin
    host: bytes  # the Host header the service gets
    path_prefix: bytes  # of the base URL, usually empty

    @property
    def embedded(self) -> bool:
        return self.pool is None


def _no_default_headers(client: httpx.AsyncClient) -> httpx.AsyncClient:
    # A proxy forwards the caller's headers; httpx's own (User-Agent, Accept-Encoding …) must not be added.
    client.headers.clear()
    return client


class Upstreams:
    """One connection pool (and one `httpx.AsyncClient` over it) for the services reached over HTTP."""

    def __init__(self, settings: GatewaySettings, services: Mapping[str, ASGIApp] | None = None) -> None:
        services = services or {}
        known = {s.name for s in SERVICES}
        unknown = sorted(set(services) - known)
        if unknown:
            raise ValueError(f"unknown services {unknown}; known: {sorted(known)}")
        connect, total = settings.upstream_connect_timeout_seconds, settings.upstream_timeout_seconds
        self.pool = Http11Pool(
            max_connections=settings.upstream_max_connections,
            timeouts=Timeouts(connect=connect, read=total, write=total, pool=connect),
        )
        timeout = httpx.Timeout(total, connect=connect, pool=connect)
        self.http = _no_default_headers(httpx.AsyncClient(transport=self.pool, timeout=timeout, trust_env=False))
        self._clients = [self.http]
        self._by_name: dict[str, Upstream] = {}
        for info in SERVICES:
            app = services.get(info.name)
            if app is None:
                base_url = settings.service_url(info.name)
                self._by_name[info.name] = _upstream(info.name, base_url, self.http, self.pool)
                continue
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            client = _no_default_headers(httpx.AsyncClient(transport=transport, timeout=timeout))
            self._clients.append(client)
            self._by_name[info.name] = _upstream(info.name, f"http://{info.name}.embedded", client, None)

    def __getitem__(self, name: str) -> Upstream:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._by_name.values())

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def _upstream(name: str, base_url: str, client: httpx.AsyncClient, pool: Http11Pool | None) -> Upstream:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https"):
        raise ValueError(f"base URL of {name} must be http(s): {base_url}")
    port = url.port or (443 if url.scheme == "https" else 80)
    prefix = url.raw_path.rstrip(b"/")
    return Upstream(name, base_url, client, pool, (url.scheme, url.host, port), url.netloc, prefix)
