"""RFC 9457 problem+json: every error the API returns, in one format.

The one exception is the Open311 GeoReport v2 routes under ``/open311/v2/``, which use
that specification's own error list; :data:`OPEN311_PREFIX` routes them elsewhere.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Scope, Send

from safecity.platform.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    SafeCityError,
    ServiceUnavailable,
    Unauthenticated,
)

log = logging.getLogger("safecity.api")

PROBLEM_JSON = "application/problem+json"
OPEN311_PREFIX = "/open311/v2/"


class Open311XMLErrors(JSONResponse):
    """Open311's XML error list, ``<errors><error><code/><description/></error></errors>``
    (a :class:`JSONResponse` subclass so that every handler keeps its return type)."""

    media_type = "text/xml; charset=utf-8"

    def render(self, content: Any) -> bytes:
        items = "".join(
            f"<error><code>{int(e['code'])}</code>"
            f"<description>{xml_escape(str(e['description']))}</description></error>"
            for e in content
        )
        return f'<?xml version="1.0" encoding="utf-8"?>\n<errors>{items}</errors>'.encode()


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str,
    type_uri: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    if request.url.path.startswith(OPEN311_PREFIX):
        # Open311 GeoReport v2: a list of {code, description}; XML for ``.xml`` paths;
        # invalid input is the specification's 400.
        code = 400 if status == 422 else status
        errors = [{"code": code, "description": detail}]
        if request.url.path.endswith(".xml"):
            return Open311XMLErrors(errors, status_code=code, headers=headers)
        return JSONResponse(errors, status_code=code, headers=headers)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def database_error(exc: BaseException) -> SafeCityError | None:
    """The one place that maps database failures to SafeCity errors (``None``: not one).

    Connection failures, timeouts and locks (``OperationalError``, ``InterfaceError``, a
    pool timeout, an invalidated connection) mean the database is unavailable → 503; a
    constraint violation that got past the service's own checks (a race) → 409; a value
    the database rejects (too long, out of range) → 422.
    """
    if isinstance(exc, sa_exc.IntegrityError):
        return Conflict("the change conflicts with existing data")
    if isinstance(exc, sa_exc.DataError):
        return InvalidInput("a value does not fit its field (too long, out of range or malformed)")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return ServiceUnavailable("the database is unavailable; try again shortly", retry_after=5)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return ServiceUnavailable("the database is unavailable; try again shortly", retry_after=5)
    return None


def _error_headers(exc: SafeCityError) -> dict[str, str] | None:
    if exc.status == 401:
        return {"WWW-Authenticate": "Bearer"}
    retry_after = exc.extra.get("retry_after")
    if isinstance(exc, RateLimited | ServiceUnavailable) and retry_after is not None:
        return {"Retry-After": str(retry_after)}
    return None


async def _safecity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SafeCityError)
    headers = _error_headers(exc)
    return problem_response(
        request,
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        type_uri=exc.type_uri,
        headers=headers,
        **exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    return problem_response(
        request,
        status=422,
        title="Invalid input",
        detail=f"{len(errors)} field(s) failed validation",
        type_uri="https://safecity.example/problems/invalid-input",
        errors=errors,
    )


# Framework errors (unknown route, wrong method, body too large…) get the same problem
# type as SafeCity's own error of that status.
_TYPE_BY_STATUS: dict[int, str] = {
    cls.status: f"https://safecity.example/problems/{cls.slug}"
    for cls in (
        Unauthenticated,
        PermissionDenied,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        ServiceUnavailable,
    )
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        request,
        status=exc.status_code,
        title=_status_title(exc.status_code),
        detail=str(exc.detail),
        type_uri=_TYPE_BY_STATUS.get(exc.status_code, "about:blank"),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    error = database_error(exc)
    if error is None:
        return await _unhandled(request, exc)
    if not isinstance(error, ServiceUnavailable):
        log.warning("database rejected the change", exc_info=exc, extra={"path": request.url.path})
    else:
        log.error("database unavailable: %s", type(exc).__name__, extra={"path": request.url.path})
    return await _safecity_error(request, error)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        request,
        status=500,
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged.",
    )


async def exception_response(request: Request, exc: BaseException) -> JSONResponse:
    """A problem+json response for any exception (used by the request middleware)."""
    if isinstance(exc, SafeCityError):
        return await _safecity_error(request, exc)
    if isinstance(exc, StarletteHTTPException):
        return await _http_error(request, exc)
    if isinstance(exc, sa_exc.SQLAlchemyError) and database_error(exc) is not None:
        return await _database_error(request, exc)
    if not isinstance(exc, Exception):
        raise exc
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return problem_response(
        request,
        status=500,
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged.",
    )


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


async def send_problem(scope: Scope, send: Send, exc: BaseException) -> None:
    """Send ``exc`` as problem+json from pure ASGI middleware (before the app answered)."""
    response = await exception_response(Request(scope), exc)
    await response(scope, _no_receive, send)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SafeCityError, _safecity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.OperationalError, _database_error)
    app.add_exception_handler(sa_exc.InterfaceError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(sa_exc.IntegrityError, _database_error)
    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
