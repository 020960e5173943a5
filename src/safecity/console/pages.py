"""The staff console: server-rendered pages (Jinja2 + htmx) and their static assets.

Pages declare their permission like API routes do, through :func:`console_require`
(which wraps :func:`safecity.security.rbac.require`): a visitor who is not logged in is
redirected to ``/console/login`` (an HTML page, never problem+json), and a logged-in user
without the permission gets a translated 403 page. The login page, the language switch and
the static files are public.

Every asset is served by the app from ``console/static`` (no CDN); the strict CSP allows no
inline script or style, so behaviour lives in ``static/console/*.js`` and configuration in
``data-`` attributes.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from safecity import __version__
from safecity.console.i18n import LANG_COOKIE, LANGUAGES, Translator, negotiate, translator
from safecity.orgs import service as orgs
from safecity.platform.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    SafeCityError,
    Unauthenticated,
)
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security import service as security
from safecity.security import sessions
from safecity.security.auth import authenticate
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import PERMISSION_ATTR, PUBLIC_ATTR, ROLES, Principal, public, require

log = logging.getLogger("safecity.console")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
STATIC_PREFIX = "/console/static"
HOME = "/console"
LOGIN = "/console/login"
GEOJSON_URL = "/api/orgs/areas.geojson"

templates = Jinja2Templates(directory=TEMPLATES_DIR)


def msg(key: str) -> str:
    """Marks ``key`` as a message key used from Python (the i18n test collects them)."""
    return key


@dataclass(frozen=True)
class Domain:
    """A system of SafeCity shown in the navigation; ``coming`` until its issue lands."""

    key: str
    label: str
    href: str | None = None
    permission: str | None = None  # who sees the link; others see "coming"


DOMAINS: tuple[Domain, ...] = (
    Domain(
        "sensing", msg("nav.domain.sensing"), href="/console/terminal", permission="alerts:read"
    ),
    Domain(
        "dispatch", msg("nav.domain.dispatch"), href="/console/dispatch", permission="dispatch:read"
    ),
    Domain("cases", msg("nav.domain.cases"), href="/console/cases", permission="cases:read"),
    Domain(
        "linkage",
        msg("nav.domain.linkage"),
        href="/console/linkage/review",
        permission="linkage:review",
    ),
    Domain(
        "crowd", msg("nav.domain.crowd"), href="/console/crowd/hotspots", permission="crowd:read"
    ),
    Domain("traffic", msg("nav.domain.traffic")),
    Domain("fraud", msg("nav.domain.fraud"), href="/console/fraud", permission="fraud:read"),
    Domain(
        "eservices",
        msg("nav.domain.eservices"),
        href="/console/eservices",
        permission="eservices:read",
    ),
    Domain(
        "accidents",
        msg("nav.domain.accidents"),
        href="/console/accidents",
        permission="accidents:read",
    ),
)


@dataclass(frozen=True)
class WorkLink:
    """A working page in the navigation (under the overview), shown to holders of
    ``permission``."""

    key: str
    label: str
    href: str
    permission: str


WORK_LINKS: tuple[WorkLink, ...] = (
    WorkLink("alerts", msg("nav.work.alerts"), "/console/alerts", "alerts:read"),
    WorkLink("disputes", msg("nav.work.disputes"), "/console/disputes", "disputes:read"),
)

# Values that templates turn into message keys ("status.db." ~ kind, "role." ~ role …).
DB_KINDS: tuple[str, ...] = ("sqlite", "postgresql")
BUS_KINDS: tuple[str, ...] = ("memory", "nats")
ROLE_KEYS: tuple[str, ...] = (*ROLES, "none")


# --- permissions -------------------------------------------------------------------------


class LoginRequired(Exception):
    """A console page was asked for without a valid login: redirect to the login page."""


class ConsoleForbidden(Exception):
    """A logged-in principal lacks the page's permission: show the 403 page."""


def console_require(permission: str) -> Callable[..., Principal]:
    """Like :func:`require`, for HTML pages: redirects to the login page when logged out."""
    check = require(permission)

    def dependency(request: Request, session: DbSession) -> Principal:
        try:
            return check(request, session)
        except Unauthenticated:
            raise LoginRequired from None
        except PermissionDenied as exc:
            if exc.extra.get("reason") == "csrf":
                raise  # a forged or stale form: problem+json 403, nothing changes
            raise ConsoleForbidden from None

    setattr(dependency, PERMISSION_ATTR, permission)
    dependency.__name__ = f"console_require_{permission.replace(':', '_')}"
    return dependency


StaffPrincipal = Annotated[Principal, Depends(console_require("console:view"))]
AnyPrincipal = Annotated[Principal, Depends(console_require("self:read"))]


# --- rendering ---------------------------------------------------------------------------


def static_url(path: str) -> str:
    """URL of a file under ``static/`` (versioned, so a new release is not served stale)."""
    return f"{STATIC_PREFIX}/{path}?v={__version__}"


PUBLIC_PAGES: tuple[str, ...] = ("/portal", "/notices", "/accidents", "/services")
"""Citizens' pages outside the console that the language switch may return to."""


def safe_next(value: str | None, *, allow_login: bool = False) -> str:
    """A console path (or a citizens' page) to go to next (never another site); anything
    else is the home page.

    The login page itself is refused unless ``allow_login`` (the language switch may
    return to it; a successful login may not).
    """
    if not value or any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in value):
        return HOME
    parts = urlsplit(value)
    path = parts.path
    if parts.scheme or parts.netloc or value.startswith("//"):
        return HOME
    if ".." in unquote(path).split("/"):
        return HOME
    public_page = any(path == p or path.startswith(p + "/") for p in PUBLIC_PAGES)
    if path != HOME and not path.startswith(HOME + "/") and not public_page:
        return HOME
    if path.startswith(("/console/lang/", STATIC_PREFIX + "/", "/console/logout")):
        return HOME
    if path.startswith(LOGIN) and not allow_login:
        return HOME
    return value


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _translator(request: Request) -> Translator:
    settings = get_runtime(request).settings
    return translator(negotiate(request, settings.default_language))


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    principal: Principal | None = None,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    t = _translator(request)
    base: dict[str, Any] = {
        "t": t,
        "lang": t.lang,
        "languages": LANGUAGES,
        "static": static_url,
        "csrf_token": csrf_token_for(request),
        "principal": principal,
        "domains": DOMAINS,
        "work_links": WORK_LINKS,
        "here": safe_next(_here(request), allow_login=True),
    }
    base.update(context)
    base.setdefault("oidc_enabled", bool(get_runtime(request).settings.oidc_issuer))
    response = templates.TemplateResponse(
        request, template, base, status_code=status_code, headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _org_name(session: DbSession, principal: Principal, lang: str) -> str:
    if not principal.org_id:
        return ""
    try:
        org = orgs.get(session=session, org_id=principal.org_id)
    except NotFound:
        return ""
    return org.name_zh if lang == "zh" else org.name_en


def _login_redirect(next_path: str | None = None, **flags: str) -> str:
    params = [f"{k}={quote(v)}" for k, v in flags.items()]
    if next_path and next_path != HOME:
        params.append(f"next={quote(next_path, safe='/')}")
    return LOGIN + ("?" + "&".join(params) if params else "")


# --- login CSRF ---------------------------------------------------------------------------
# Before login there is no session (and so no session CSRF token): the login form uses a
# double-submit token instead. GET /console/login puts a random token in a SameSite=Strict
# cookie scoped to the login path and in the form; POST must bring both, equal. A cross-site
# page can neither read the cookie nor make the browser send it (login CSRF).

LOGIN_CSRF_COOKIE = "safecity_login_csrf"
_LOGIN_CSRF_AGE = 3600


def _login_csrf_token(request: Request) -> str:
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if 32 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(32)


def _set_login_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=_LOGIN_CSRF_AGE,
        path=LOGIN,
        secure=get_runtime(request).settings.cookie_secure,
        httponly=True,
        samesite="strict",
    )


def _login_csrf_ok(request: Request, submitted: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected and submitted) and hmac.compare_digest(
        expected.encode(), submitted.encode()
    )


# --- exception handlers (installed by :func:`install`) -----------------------------------


async def _login_required(request: Request, exc: Exception) -> Response:
    target = _login_redirect(safe_next(_here(request)))
    if request.headers.get("hx-request"):
        # htmx fetches a fragment: tell it to load the login page instead of swapping.
        return Response(status_code=401, headers={"HX-Redirect": target})
    response = RedirectResponse(target, status_code=303)
    if request.cookies.get(sessions.SESSION_COOKIE):
        sessions.clear_session_cookie(response, settings=get_runtime(request).settings)
    return response


async def _forbidden(request: Request, exc: Exception) -> Response:
    return render(request, "forbidden.html", status_code=403)


# --- routes ------------------------------------------------------------------------------

router = APIRouter(include_in_schema=False)


@router.get("/", dependencies=[Depends(public)])
def root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=307)


@router.get(HOME, response_class=HTMLResponse)
def dashboard(request: Request, session: DbSession, principal: StaffPrincipal) -> HTMLResponse:
    lang = _translator(request).lang
    return render(
        request,
        "dashboard.html",
        principal=principal,
        active="overview",
        org_name=_org_name(session, principal, lang),
        geojson_url=GEOJSON_URL,
        tile_url=get_runtime(request).settings.tile_url,
    )


@router.get("/console/partials/status", response_class=HTMLResponse)
def platform_status(
    request: Request, session: DbSession, principal: StaffPrincipal
) -> HTMLResponse:
    runtime = get_runtime(request)
    try:
        session.execute(text("SELECT 1"))
        db_ok = True
    except SQLAlchemyError:
        db_ok = False
    db_kind = "postgresql" if runtime.engine.dialect.name == "postgresql" else "sqlite"
    bus_kind = "nats" if runtime.settings.bus_url.startswith("nats") else "memory"
    return render(
        request,
        "partials/status.html",
        principal=principal,
        db_ok=db_ok,
        db_kind=db_kind,
        bus_kind=bus_kind,
        version=__version__,
    )


@router.get(LOGIN, response_class=HTMLResponse, dependencies=[Depends(public)])
def login_page(
    request: Request,
    session: DbSession,
    next_url: Annotated[str, Query(alias="next", max_length=2000)] = HOME,
    signed_out: Annotated[bool, Query()] = False,
) -> Response:
    target = safe_next(next_url)
    try:
        if authenticate(request, session) is not None:
            return RedirectResponse(target, status_code=303)
    except Unauthenticated:
        pass  # a stale cookie: show the form
    notice = None
    if signed_out:
        notice = msg("login.notice.signed_out")
    elif target != HOME:
        notice = msg("login.notice.required")
    token = _login_csrf_token(request)
    response = render(
        request,
        "login.html",
        next=target,
        notice=notice,
        error=None,
        username="",
        csrf_token=token,
    )
    _set_login_csrf(request, response, token)
    return response


@router.post(LOGIN, response_class=HTMLResponse, dependencies=[Depends(public)])
def login_submit(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=150)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    totp_code: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2000)] = HOME,
) -> Response:
    target = safe_next(next_url)
    username = username.strip()

    def again(error: str, status_code: int) -> HTMLResponse:
        token = _login_csrf_token(request)
        response = render(
            request,
            "login.html",
            status_code=status_code,
            next=target,
            notice=None,
            error=error,
            username=username,
            csrf_token=token,
        )
        _set_login_csrf(request, response, token)
        return response

    if not _login_csrf_ok(request, csrf_token):
        return again(msg("login.error.csrf"), 403)
    if not (username and password and totp_code.strip()):
        return again(msg("login.error.missing"), 422)
    client = request.client.host if request.client else None
    settings = get_runtime(request).settings
    try:
        _principal, token = security.login(
            session=session,
            username=username,
            password=password,
            totp_code=totp_code.strip(),
            ip=client,
            settings=settings,
        )
    except RateLimited:
        return again(msg("login.error.locked"), 429)
    except (Unauthenticated, PermissionDenied, InvalidInput):
        return again(msg("login.error.invalid"), 401)
    except SafeCityError as exc:
        log.warning("console login failed", extra={"status": exc.status})
        return again(msg("login.error.unavailable"), exc.status)
    response = RedirectResponse(target, status_code=303)
    sessions.set_session_cookie(response, token, settings=settings)
    response.delete_cookie(
        LOGIN_CSRF_COOKIE, path=LOGIN, secure=settings.cookie_secure, httponly=True
    )
    return response


@router.post("/console/logout")
def logout(request: Request, session: DbSession, principal: AnyPrincipal) -> Response:
    # The session's CSRF token was checked by authentication (unsafe method + cookie).
    security.logout(session=session, principal=principal)
    response = RedirectResponse(_login_redirect(signed_out="1"), status_code=303)
    sessions.clear_session_cookie(response, settings=get_runtime(request).settings)
    return response


@router.get("/console/lang/{lang}", dependencies=[Depends(public)])
def switch_language(
    request: Request,
    lang: str,
    next_url: Annotated[str, Query(alias="next", max_length=2000)] = HOME,
) -> RedirectResponse:
    response = RedirectResponse(safe_next(next_url, allow_login=True), status_code=303)
    if lang in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            path="/",
            secure=get_runtime(request).settings.cookie_secure,
            httponly=True,
            samesite="lax",
        )
    return response


# --- wiring ------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the static files (public) and the console's HTML error handlers on ``app``.

    A :class:`Mount` cannot carry dependencies, so it is marked public with the
    ``__safecity_public__`` attribute that the route-permission test reads.
    """
    mount = Mount(STATIC_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="console-static")
    setattr(mount, PUBLIC_ATTR, True)
    app.router.routes.append(mount)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(ConsoleForbidden, _forbidden)
