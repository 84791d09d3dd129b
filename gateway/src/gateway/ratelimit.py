"""Per-client token buckets: keyed by the verified token's user, else by the client address.

In memory, so the limit holds per gateway replica; with N replicas behind a balancer a
client gets up to N times the rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from callcenter_common.auth import TokenVerifier
from callcenter_common.problems import ProblemError, problem_response

RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused by the rate limit")

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class TokenBuckets:
    """`rate` tokens a second, at most `burst` saved up, one bucket per key."""

    def __init__(
        self, rate: float, burst: int, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, updated_at]

    def take(self, key: str) -> float:
        """Take a token: 0.0 if allowed, else the seconds until one is available."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()


class TokenUsers:
    """Token → user id, verified once per token (an Ed25519 check costs more than the proxying)."""

    def __init__(
        self, verifier: TokenVerifier, *, max_tokens: int = 10_000, clock: Callable[[], float] = time.time
    ) -> None:
        self.verifier = verifier
        self.max_tokens = max_tokens
        self._clock = clock
        self._users: dict[str, tuple[str, float]] = {}  # token -> (user id, expires at)

    def user_of(self, token: str) -> str | None:
        known = self._users.get(token)
        if known is None:
            known = self._verify(token)
            if len(self._users) >= self.max_tokens:
                self._users.clear()
            self._users[token] = known
        user_id, expires_at = known
        return user_id if user_id and self._clock() < expires_at else None

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            principal = self.verifier.verify(token)
        except ProblemError:
            return "", 0.0  # remembered too: a bad token must not cost a signature check per request
        return principal.user_id, float(principal.claims.get("exp", 0))


def _bearer(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            text: str = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
            return None
    return None


class RateLimitMiddleware:
    """Pure ASGI: 429 `rate.limited` with `Retry-After` once a client's bucket is empty."""

    def __init__(self, app: ASGIApp, buckets: TokenBuckets, users: TokenUsers) -> None:
        self.app = app
        self.buckets = buckets
        self.users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        user_id = self.users.user_of(token) if token else None
        if user_id is not None:
            key = "user:" + user_id
        else:
            client = scope.get("client")
            key = "ip:" + (client[0] if client else "unknown")
        wait = self.buckets.take(key)
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        RATE_LIMITED.inc()
        retry_after = str(max(1, math.ceil(wait)))
        problem = ProblemError(
            429,
            "rate.limited",
            "Too many requests",
            detail=f"retry in {retry_after} s",
            headers={"Retry-After": retry_after},
        )
        await problem_response(problem, scope["path"])(scope, receive, send)
