"""One exception tree for SafeCity.

Every error a user can cause is a :class:`SafeCityError`. The API maps it once to
RFC 9457 problem+json (see :mod:`safecity.platform.problems`); the CLI maps it to a
one-line message and a non-zero exit code.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SafeCityError(Exception):
    """Base of every error SafeCity raises on purpose."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"
    slug: ClassVar[str] = "bad-request"
    exit_code: ClassVar[int] = 2

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    @property
    def type_uri(self) -> str:
        return f"https://safecity.example/problems/{self.slug}"


class InvalidInput(SafeCityError):
    status = 422
    title = "Invalid input"
    slug = "invalid-input"


class Unauthenticated(SafeCityError):
    status = 401
    title = "Authentication required"
    slug = "unauthenticated"


class PermissionDenied(SafeCityError):
    status = 403
    title = "Permission denied"
    slug = "permission-denied"


class NotFound(SafeCityError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(SafeCityError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class IllegalTransition(Conflict):
    title = "Illegal state transition"
    slug = "illegal-transition"


class PayloadTooLarge(SafeCityError):
    status = 413
    title = "Payload too large"
    slug = "payload-too-large"


class RateLimited(SafeCityError):
    status = 429
    title = "Too many requests"
    slug = "rate-limited"


class ServiceUnavailable(SafeCityError):
    status = 503
    title = "Service unavailable"
    slug = "service-unavailable"
    exit_code = 3


class ConfigurationError(SafeCityError):
    status = 500
    title = "Configuration error"
    slug = "configuration-error"
    exit_code = 3
