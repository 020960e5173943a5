"""RFC 9457 problem+json: every error the API returns, in one format.

The one exception is the Open311 GeoReport v2 routes under ``/open311/v2/``, which use
that specification's own error list; :data:`OPEN311_PREFIX` routes them elsewhere.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from safecity.platform.errors import SafeCityError

log = logging.getLogger("safecity.api")

PROBLEM_JSON = "application/problem+json"
OPEN311_PREFIX = "/open311/v2/"


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
        # Open311 GeoReport v2: a list of {code, description}.
        return JSONResponse(
            [{"code": status, "description": detail}], status_code=status, headers=headers
        )
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


async def _safecity_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SafeCityError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
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


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        request,
        status=exc.status_code,
        title=_status_title(exc.status_code),
        detail=str(exc.detail),
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(
        request,
        status=500,
        title="Internal server error",
        detail="An unexpected error occurred; it has been logged.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SafeCityError, _safecity_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
