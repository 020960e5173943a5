"""Citizens' sign-in for the e-service pages, and the dependency that guards them.

Citizens have no second factor (:func:`safecity.security.auth.needs_totp`), so they sign
in at ``/services/login`` with a password only; staff, who need their one-time code, are
refused here and use the console's login. The login form carries a double-submit token
(a SameSite=Strict cookie scoped to the login path plus a hidden field), as the console's
does: a cross-site page can neither read the cookie nor make the browser send it.

:func:`citizen_require` is :func:`safecity.security.rbac.require` for these pages: a
visitor who is not signed in is redirected (303) to the sign-in page and comes back to
the page they were on; one without the permission gets the console's 403 page.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from safecity.console.pages import ConsoleForbidden, render
from safecity.eservices.workflow import APPLY
from safecity.platform.errors import InvalidInput, PermissionDenied, RateLimited, Unauthenticated
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security import service as security
from safecity.security import sessions
from safecity.security.auth import authenticate
from safecity.security.rbac import PERMISSION_ATTR, Principal, public, require

BASE = "/services"
LOGIN = BASE + "/login"
LOGIN_CSRF_COOKIE = "safecity_services_login"

router = APIRouter(include_in_schema=False)


# --------------------------------------------------------------------------- access


def _login_url(next_path: str) -> str:
    return f"{LOGIN}?next={quote(next_path, safe='/')}"


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def citizen_require(permission: str) -> Callable[..., Principal]:
    """Like :func:`require`, for citizens' pages: a visitor who is not signed in is sent to
    ``/services/login`` (303), one without ``permission`` gets the 403 page."""
    check = require(permission)

    def dependency(request: Request, session: DbSession) -> Principal:
        try:
            return check(request, session)
        except Unauthenticated:
            target = _login_url(
                _here(request) if request.method == "GET" else page_of_post(request.url.path)
            )
            raise HTTPException(303, headers={"Location": target}) from None
        except PermissionDenied as exc:
            if exc.extra.get("reason") == "csrf":
                raise
            raise ConsoleForbidden from None

    setattr(dependency, PERMISSION_ATTR, permission)
    dependency.__name__ = f"citizen_require_{permission.replace(':', '_')}"
    return dependency


Citizen = Annotated[Principal, Depends(citizen_require(APPLY))]


def page_of_post(path: str) -> str:
    """The page a form posted to ``path`` was on (where to return after signing in)."""
    path = re.sub(r"/(start|submit|supplement)$", "", path)
    return re.sub(r"/materials/[^/]+$", "/materials", path)


def safe_services_next(value: str | None) -> str:
    """A path under ``/services`` to go to after signing in; anything else is ``/services``."""
    if (
        not value
        or not value.startswith(BASE)
        or value.startswith("//")
        or "\\" in value
        or ".." in value
        or any(ord(c) < 32 for c in value)
        or value.startswith(LOGIN)
    ):
        return BASE
    rest = value[len(BASE) :]
    return value if rest == "" or rest[0] in "/?" else BASE


def signed_in(request: Request, session: Session) -> Principal | None:
    """Who is signed in on a public page (None: nobody, or a stale cookie)."""
    try:
        return authenticate(request, session)
    except (Unauthenticated, PermissionDenied):
        return None


@router.get(LOGIN, response_class=HTMLResponse, dependencies=[Depends(public)])
def login_page(
    request: Request, next_url: Annotated[str, Query(alias="next", max_length=2000)] = BASE
) -> Response:
    return _login_form(request, safe_services_next(next_url), error=None, status_code=200)


def _login_form(request: Request, target: str, *, error: str | None, status_code: int) -> Response:
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    token = current if re.fullmatch(r"[A-Za-z0-9_-]{32,64}", current) else secrets.token_urlsafe(32)
    response = render(
        request,
        "eservices/login.html",
        status_code=status_code,
        next=target,
        error=error,
        login_token=token,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=LOGIN,
        secure=get_runtime(request).settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post(LOGIN, response_class=HTMLResponse, dependencies=[Depends(public)])
def login_submit(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=150)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    login_token: Annotated[str, Form(max_length=256)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2000)] = BASE,
) -> Response:
    """A citizen signs in with a password (staff need their second factor: console login)."""
    target = safe_services_next(next_url)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (expected and login_token and hmac.compare_digest(expected, login_token)):
        return _login_form(request, target, error="csrf", status_code=403)
    if not (username.strip() and password):
        return _login_form(request, target, error="missing", status_code=422)
    settings = get_runtime(request).settings
    try:
        _principal, token = security.login(
            session=session,
            username=username.strip(),
            password=password,
            totp_code=None,
            ip=request.client.host if request.client else None,
            settings=settings,
        )
    except RateLimited:
        session.commit()  # the failed attempts count
        return _login_form(request, target, error="locked", status_code=429)
    except (Unauthenticated, PermissionDenied, InvalidInput):
        session.commit()
        return _login_form(request, target, error="invalid", status_code=401)
    response = RedirectResponse(target, status_code=303)
    sessions.set_session_cookie(response, token, settings=settings)
    response.delete_cookie(
        LOGIN_CSRF_COOKIE, path=LOGIN, secure=settings.cookie_secure, httponly=True
    )
    return response


@router.post(BASE + "/logout")
def logout(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(citizen_require("self:read"))],
) -> Response:
    """Sign out (the session's CSRF token was checked) and go back to the catalogue."""
    security.logout(session=session, principal=principal)
    response = RedirectResponse(BASE, status_code=303)
    sessions.clear_session_cookie(response, settings=get_runtime(request).settings)
    return response
