"""Rate limiting: an in-memory token bucket per (client, route family).

Each process keeps its own buckets, so with N workers a client gets at most N times the
rate; that is enough to slow password guessing (per-account lockout is the real guard,
see :mod:`safecity.security`). Two ways to use it:

* :class:`RateLimitMiddleware` applies :class:`RateRule` s by method and exact path before
  routing (installed by :func:`safecity.platform.middleware.install_middleware`; it covers
  ``POST /api/auth/login``);
* :func:`rate_limit` is a route dependency for any other route::

      @router.post("/api/reports", dependencies=[Depends(rate_limit("reports", per_minute=30))])

Exceeding the rate gives 429 problem+json with a ``Retry-After`` header.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from safecity.platform.errors import RateLimited

Clock = Callable[[], float]


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """Token buckets keyed by an arbitrary string; ``capacity`` tokens, refilled at ``rate``/s."""

    def __init__(
        self,
        *,
        rate: float,
        capacity: float,
        clock: Clock = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens for ``key``: 0.0 when allowed, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(tokens=self.capacity, updated=now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.rate)
                bucket.updated = now
            if bucket.tokens >= cost:
                bucket.tokens -= cost
                return 0.0
            return (cost - bucket.tokens) / self.rate

    def check(self, key: str, *, what: str = "requests") -> None:
        """Raise :class:`RateLimited` (429, with ``retry_after``) when ``key`` is over its rate."""
        wait = self.acquire(key)
        if wait > 0:
            raise RateLimited(
                f"too many {what}; try again in {math.ceil(wait)} s",
                retry_after=math.ceil(wait),
            )

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (they behave like new ones)."""
        full = [
            k
            for k, b in self._buckets.items()
            if b.tokens + (now - b.updated) * self.rate >= self.capacity
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # still full: drop the oldest half
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].updated)
            for k in by_age[: len(by_age) // 2]:
                del self._buckets[k]


def client_key(scope: Scope) -> str:
    """The client address (uvicorn resolves X-Forwarded-For with ``--proxy-headers``)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


@dataclass(frozen=True)
class RateRule:
    """``per_minute`` requests per client to ``method path`` (exact path), bursts of ``burst``."""

    method: str
    path: str
    family: str
    per_minute: float
    burst: int


class RateLimitMiddleware:
    """Pure ASGI: applies :class:`RateRule` s before routing; 429 problem+json when exceeded."""

    def __init__(self, app: ASGIApp, rules: Iterable[RateRule], clock: Clock = time.monotonic):
        self.app = app
        # Rules of one family share one bucket per client (the first rule sets its rate).
        limiters: dict[str, TokenBucketLimiter] = {}
        self.rules: dict[tuple[str, str], tuple[RateRule, TokenBucketLimiter]] = {}
        for r in rules:
            limiter = limiters.get(r.family)
            if limiter is None:
                limiter = limiters[r.family] = TokenBucketLimiter(
                    rate=r.per_minute / 60.0, capacity=r.burst, clock=clock
                )
            self.rules[(r.method.upper(), r.path.rstrip("/") or "/")] = (r, limiter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.rules:
            path = str(scope.get("path", "")).rstrip("/") or "/"
            match = self.rules.get((str(scope.get("method", "")).upper(), path))
            if match is not None:
                rule, limiter = match
                try:
                    limiter.check(f"{rule.family}:{client_key(scope)}")
                except RateLimited as exc:
                    from safecity.platform.problems import send_problem

                    await send_problem(scope, send, exc)
                    return
        await self.app(scope, receive, send)


_LIMITERS_LOCK = threading.Lock()


def rate_limit(family: str, *, per_minute: float, burst: int | None = None) -> Callable[..., None]:
    """Route dependency: at most ``per_minute`` calls per client to this route ``family``.

    The buckets live on the application (``app.state``), so each app instance (and each
    test) starts with full buckets.
    """
    capacity = burst if burst is not None else max(1, math.ceil(per_minute))

    def dependency(request: Request) -> None:
        state = request.app.state
        with _LIMITERS_LOCK:
            limiters: dict[str, TokenBucketLimiter] | None = getattr(state, "rate_limiters", None)
            if limiters is None:
                limiters = {}
                state.rate_limiters = limiters
            limiter = limiters.get(family)
            if limiter is None:
                limiter = limiters[family] = TokenBucketLimiter(
                    rate=per_minute / 60.0, capacity=capacity
                )
        limiter.check(f"{family}:{client_key(request.scope)}")

    dependency.__name__ = f"rate_limit_{family}"
    return dependency
