"""Request middleware, all pure ASGI (no ``BaseHTTPMiddleware``, so streaming and
background tasks keep working and nothing buffers a response).

From the outside in (see :func:`install_middleware`):

1. :class:`SecurityHeadersMiddleware` — CSP, HSTS (when cookies are secure) and the usual
   headers on every HTTP response, errors included.
2. :class:`RequestContextMiddleware` — request id (``X-Request-ID`` accepted when sane,
   otherwise generated; on ``request.state.request_id`` and echoed), one structured access
   log line per request, Prometheus metrics by route template, and the last net: an
   exception nobody handled becomes a 500 problem+json without a stack trace.
3. :class:`~safecity.platform.ratelimit.RateLimitMiddleware` — token buckets for the
   rules in :func:`default_rate_rules` (the login routes).
4. :class:`BodyLimitMiddleware` — ``settings.max_body_bytes``: a declared
   ``Content-Length`` over the limit is refused before the app runs; a streamed body is
   counted as it arrives and reading stops at the limit. Both → 413 problem+json.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from safecity.platform import metrics
from safecity.platform.errors import PayloadTooLarge
from safecity.platform.logging import REQUEST_ID
from safecity.platform.problems import exception_response, send_problem
from safecity.platform.ratelimit import RateLimitMiddleware, RateRule
from safecity.settings import Settings

access_log = logging.getLogger("safecity.access")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
UNMATCHED_ROUTE = "<unmatched>"
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes that succeed are logged at DEBUG, not INFO (they come every few s)."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def request_id_for(incoming: str | None) -> str:
    """The incoming id when it is sane (1–128 of ``A-Z a-z 0-9 . _ : -``), else a new one."""
    if incoming and _SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded label set), or ``<unmatched>``."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str) and path:
        return str(scope.get("root_path", "")) + path
    return UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Request id, access log, metrics, and a problem+json 500 for unhandled errors."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = request_id_for(_header(scope, b"x-request-id"))
        state = _state(scope)
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:
                # Too late for a clean answer: the response is half sent.
                access_log.error("error after response started", exc_info=exc)
                raise
            response = await exception_response(Request(scope), exc)
            await response(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            metrics.HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            method = str(scope.get("method", ""))
            route = route_template(scope)
            metrics.observe_request(method=method, route=route, status=status, seconds=elapsed)
            principal = state.get("principal")
            quiet = status < 400 and scope.get("path") in QUIET_PATHS
            access_log.log(
                logging.DEBUG if quiet else logging.INFO,
                "%s %s %s",
                method,
                scope.get("path", ""),
                status,
                extra={
                    "request_id": request_id,
                    "method": method,
                    "path": scope.get("path", ""),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "principal_id": getattr(principal, "id", None),
                    "client": (scope.get("client") or ("", 0))[0],
                },
            )


class _BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when the streamed body passes the limit.

    An HTTPException so that FastAPI's body parsing re-raises it unchanged; the problem
    handler then answers 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


_UPLOAD_LIMITS: list[tuple[re.Pattern[str], int]] = []


def register_upload_limit(path_pattern: str, max_bytes: int) -> None:
    """Let requests whose path matches ``path_pattern`` (a regular expression, anchored)
    carry up to ``max_bytes`` instead of ``settings.max_body_bytes`` — for the few routes
    that take files (a domain calls this at import, next to its route)."""
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    compiled = re.compile(path_pattern)
    if all(p.pattern != compiled.pattern for p, _ in _UPLOAD_LIMITS):
        _UPLOAD_LIMITS.append((compiled, max_bytes))


class BodyLimitMiddleware:
    """413 problem+json for bodies over ``max_bytes`` (or a registered upload route's
    limit), without reading the whole body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.default_max_bytes = max_bytes

    def limit_for(self, path: str) -> int:
        for pattern, limit in _UPLOAD_LIMITS:
            if pattern.fullmatch(path):
                return limit
        return self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > max_bytes
            except ValueError:
                too_large = False
            if too_large:
                await send_problem(
                    scope, send, PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
                )
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise _BodyTooLarge(max_bytes)
            return message

        async def watch_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watch_send)
        except _BodyTooLarge as exc:
            if started:
                raise
            await send_problem(scope, send, exc)


def content_security_policy(settings: Settings) -> str:
    """A strict CSP: everything from this origin, no inline scripts, no framing.

    Images may also come from ``data:`` URLs (Leaflet's icons) and from the configured
    map tile host, when ``settings.tile_url`` names one.
    """
    img = ["'self'", "data:"]
    tile_source = _tile_source(settings.tile_url)
    if tile_source:
        img.append(tile_source)
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": " ".join(img),
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{k} {v}" for k, v in directives.items())


def _tile_source(tile_url: str) -> str | None:
    """The CSP source for a tile URL template such as ``https://{s}.tile.example/{z}/{x}/{y}``."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None  # relative: served by this origin
    host = parts.netloc
    labels = host.split(".")
    if "{" in labels[0]:
        labels[0] = "*"  # {s}.tile.example → *.tile.example
    host = ".".join(labels)
    if "{" in host or "}" in host or not re.fullmatch(r"[A-Za-z0-9.*:\-\[\]]+", host):
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}"


def security_headers(settings: Settings) -> list[tuple[bytes, bytes]]:
    headers = {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Permissions-Policy": (
            "camera=(), microphone=(), geolocation=(self), payment=(), usb=(), interest-cohort=()"
        ),
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if settings.cookie_secure:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class SecurityHeadersMiddleware:
    """Adds :func:`security_headers` to every HTTP response (kept if a route set its own)."""

    def __init__(self, app: ASGIApp, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.app = app
        self.headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                raw.extend((k, v) for k, v in self.headers if k not in present)
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)


def default_rate_rules(settings: Settings) -> list[RateRule]:
    """Rate limits applied before routing, per client address."""
    per_minute = float(getattr(settings, "login_rate_per_minute", 10))
    burst = max(1, int(per_minute))
    # Every way of presenting a password shares one bucket per client address.
    return [
        RateRule("POST", path, "login", per_minute, burst)
        for path in ("/api/auth/login", "/api/auth/tokens", "/console/login")
    ]


def install_middleware(app: FastAPI, settings: Settings) -> None:
    """Install SafeCity's middleware on ``app`` (called once by ``create_app``)."""
    # add_middleware prepends: the last added is the outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RateLimitMiddleware, rules=default_rate_rules(settings))
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, headers=security_headers(settings))
