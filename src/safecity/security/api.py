"""Auth and users API (thin: parse, authorise, call the service, return).

Auth:  ``POST /api/auth/login`` (cookie session), ``POST /api/auth/tokens`` (bearer token),
``POST /api/auth/logout``, ``GET /api/auth/me``, ``GET /api/auth/oidc/login`` and
``GET /api/auth/oidc/callback``.
Users: ``/api/users`` — list, get, create, roles, deactivate, unlock, reset-totp, tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from safecity.platform.errors import InvalidInput, Unauthenticated
from safecity.platform.pagination import ListParams, Page
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security import auth, oidc, service, sessions
from safecity.security.models import User
from safecity.security.rbac import ROLES, Principal, public, require
from safecity.security.schemas import (
    LoginIn,
    LoginOut,
    MeOut,
    RolesUpdate,
    TokenCreate,
    TokenLoginIn,
    TokenOut,
    TotpReset,
    UserCreate,
    UserCreated,
    UserOut,
)
from safecity.settings import Settings

router = APIRouter()

UserId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
NO_STORE = {"Cache-Control": "no-store"}


def _settings(request: Request) -> Settings:
    return get_runtime(request).settings


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _me(session: Session, principal: Principal, csrf_token: str | None) -> MeOut:
    user = session.get(User, principal.id)
    return MeOut(
        id=principal.id,
        username=principal.username,
        display_name=user.display_name if user else "",
        kind=principal.kind,
        org_id=principal.org_id,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        auth_method=principal.auth_method,
        csrf_token=csrf_token,
    )


def _end_previous_session(request: Request, session: Session) -> None:
    """A fresh session id on every login (no fixation): the browser's old one ends."""
    old = request.cookies.get(sessions.SESSION_COOKIE)
    previous = sessions.find(session=session, token=old) if old else None
    if previous is not None:
        sessions.end(session=session, session_id=previous.id)


def _user_out(user: User, roles: list[str]) -> UserOut:
    now = datetime.now(UTC)
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        kind=user.kind,
        org_id=user.org_id,
        roles=roles,
        active=user.active,
        locked=user.locked_until is not None and user.locked_until > now,
        has_totp=user.totp_secret is not None,
        oidc_linked=user.oidc_subject is not None,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def _created(change: service.UserChange) -> UserCreated:
    out = _user_out(change.user, change.roles)
    return UserCreated(**out.model_dump(), totp_secret=change.totp_secret, totp_uri=change.totp_uri)


# --------------------------------------------------------------------------- auth


@router.post(
    "/api/auth/login",
    response_model=LoginOut,
    dependencies=[Depends(public)],
    tags=["auth"],
    summary="Log in with username, password and TOTP code; sets the session cookie.",
)
def login(body: LoginIn, request: Request, response: Response, session: DbSession) -> LoginOut:
    settings = _settings(request)
    principal, token = auth.login(
        session=session,
        username=body.username,
        password=body.password,
        totp_code=body.totp,
        ip=_ip(request),
        settings=settings,
    )
    _end_previous_session(request, session)
    row = sessions.find(session=session, token=token)
    assert row is not None
    sessions.set_session_cookie(response, token, settings=settings)
    response.headers.update(NO_STORE)
    return LoginOut(
        user=_me(session, principal, row.csrf_token),
        csrf_token=row.csrf_token,
        expires_at=row.expires_at,
    )


@router.post(
    "/api/auth/tokens",
    response_model=TokenOut,
    status_code=201,
    dependencies=[Depends(public)],
    tags=["auth"],
    summary="Exchange username, password and TOTP code for a bearer token.",
)
def create_token(
    body: TokenLoginIn, request: Request, response: Response, session: DbSession
) -> TokenOut:
    _, token, expires = auth.login_for_token(
        session=session,
        username=body.username,
        password=body.password,
        totp_code=body.totp,
        name=body.name,
        settings=_settings(request),
    )
    response.headers.update(NO_STORE)
    return TokenOut(access_token=token, expires_at=expires)


@router.post("/api/auth/logout", status_code=204, tags=["auth"])
def logout(
    principal: Annotated[Principal, Depends(require("self:read"))],
    request: Request,
    session: DbSession,
) -> Response:
    """End the cookie session (and clear the cookie), or revoke the bearer token used."""
    auth.logout(session=session, principal=principal)
    response = Response(status_code=204)
    if principal.session_id is not None:
        sessions.clear_session_cookie(response, settings=_settings(request))
    return response


@router.get("/api/auth/me", response_model=MeOut, tags=["auth"])
def me(
    principal: Annotated[Principal, Depends(require("self:read"))],
    request: Request,
    session: DbSession,
) -> MeOut:
    csrf_token = getattr(request.state, "csrf_token", None) if principal.session_id else None
    return _me(session, principal, csrf_token)


@router.get(
    "/api/auth/oidc/login",
    dependencies=[Depends(public)],
    tags=["auth"],
    status_code=303,
    response_class=RedirectResponse,
)
def oidc_login(request: Request, session: DbSession) -> RedirectResponse:
    """Redirect to the OpenID Connect provider (404 when OIDC is not configured)."""
    settings = _settings(request)
    url, state = oidc.begin_login(
        session=session,
        settings=settings,
        redirect_uri=str(request.url_for("oidc_callback")),
    )
    response = RedirectResponse(url, status_code=303, headers=NO_STORE)
    response.set_cookie(
        oidc.STATE_COOKIE,
        state,
        max_age=int(oidc.STATE_TTL.total_seconds()),
        path="/api/auth/oidc",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


_CONTINUE_PAGE = (
    '<!doctype html><html><head><meta charset="utf-8">'
    '<meta http-equiv="refresh" content="0;url={url}"><title>SafeCity</title></head>'
    '<body><a href="{url}">Continue</a></body></html>'
)


@router.get(
    "/api/auth/oidc/callback",
    name="oidc_callback",
    dependencies=[Depends(public)],
    tags=["auth"],
    response_class=HTMLResponse,
)
def oidc_callback(
    request: Request,
    session: DbSession,
    code: Annotated[str | None, Query(max_length=2000)] = None,
    state: Annotated[str | None, Query(max_length=200)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The provider's redirect back: validate, start a session, continue to the console.

    Answers with a same-site page that moves on to ``/``: the provider's cross-site
    redirect would not carry the SameSite=Strict session cookie on a further redirect.
    """
    settings = _settings(request)
    if error is not None or not code or not state:
        raise Unauthenticated(f"{oidc.OIDC_FAILED}: the provider did not grant the login")
    _, token = oidc.complete_login(
        session=session,
        settings=settings,
        code=code,
        state=state,
        state_cookie=request.cookies.get(oidc.STATE_COOKIE),
        ip=_ip(request),
    )
    _end_previous_session(request, session)
    response = HTMLResponse(_CONTINUE_PAGE.format(url=escape("/")), headers=NO_STORE)
    sessions.set_session_cookie(response, token, settings=settings)
    response.delete_cookie(oidc.STATE_COOKIE, path="/api/auth/oidc")
    return response


# --------------------------------------------------------------------------- users


@router.get("/api/users", response_model=Page[UserOut], tags=["users"])
def list_users(
    principal: Annotated[Principal, Depends(require("users:read"))],
    session: DbSession,
    params: Annotated[ListParams, Depends(service.USER_LIST.params)],
    role: Annotated[str | None, Query(max_length=32, description="Holders of this role.")] = None,
) -> Page[UserOut]:
    """Users in the caller's org scope (only those)."""
    if role is not None and role not in ROLES:
        raise InvalidInput(f"unknown role {role[:32]!r}")
    page = service.list_users(session=session, principal=principal, params=params, role=role)
    roles = service.roles_by_user(session=session, user_ids=[u.id for u in page.items])
    return Page[UserOut](
        items=[_user_out(u, roles[u.id]) for u in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next=page.next,
    )


@router.post("/api/users", response_model=UserCreated, status_code=201, tags=["users"])
def create_user(
    body: UserCreate,
    principal: Annotated[Principal, Depends(require("users:write"))],
    response: Response,
    session: DbSession,
) -> UserCreated:
    """Create a person or a non-human principal; a staff member's TOTP secret is shown once."""
    change = service.create_user(
        session=session,
        actor=principal,
        username=body.username,
        org_id=body.org_id,
        roles=body.roles,
        kind=body.kind,
        display_name=body.display_name,
        password=body.password,
        oidc_subject=body.oidc_subject,
    )
    response.headers.update(NO_STORE)
    return _created(change)


@router.get("/api/users/{user_id}", response_model=UserOut, tags=["users"])
def get_user(
    user_id: UserId,
    principal: Annotated[Principal, Depends(require("users:read"))],
    session: DbSession,
) -> UserOut:
    user = service.get_user(session=session, principal=principal, user_id=user_id)
    return _user_out(user, auth.roles_of(session=session, user_id=user.id))


@router.put("/api/users/{user_id}/roles", response_model=UserCreated, tags=["users"])
def set_roles(
    user_id: UserId,
    body: RolesUpdate,
    principal: Annotated[Principal, Depends(require("users:write"))],
    response: Response,
    session: DbSession,
) -> UserCreated:
    """Replace the roles; a person who becomes staff gets a TOTP secret (shown once)."""
    change = service.set_roles(session=session, actor=principal, user_id=user_id, roles=body.roles)
    response.headers.update(NO_STORE)
    return _created(change)


@router.post("/api/users/{user_id}/deactivate", response_model=UserOut, tags=["users"])
def deactivate_user(
    user_id: UserId,
    principal: Annotated[Principal, Depends(require("users:write"))],
    session: DbSession,
) -> UserOut:
    user = service.deactivate_user(session=session, actor=principal, user_id=user_id)
    return _user_out(user, auth.roles_of(session=session, user_id=user.id))


@router.post("/api/users/{user_id}/unlock", response_model=UserOut, tags=["users"])
def unlock_user(
    user_id: UserId,
    principal: Annotated[Principal, Depends(require("users:write"))],
    session: DbSession,
) -> UserOut:
    user = service.unlock_user(session=session, actor=principal, user_id=user_id)
    return _user_out(user, auth.roles_of(session=session, user_id=user.id))


@router.post("/api/users/{user_id}/reset-totp", response_model=TotpReset, tags=["users"])
def reset_totp(
    user_id: UserId,
    principal: Annotated[Principal, Depends(require("users:write"))],
    response: Response,
    session: DbSession,
) -> TotpReset:
    change = service.reset_totp(session=session, actor=principal, user_id=user_id)
    assert change.totp_secret is not None
    assert change.totp_uri is not None
    response.headers.update(NO_STORE)
    return TotpReset(
        user_id=change.user.id, totp_secret=change.totp_secret, totp_uri=change.totp_uri
    )


@router.post(
    "/api/users/{user_id}/tokens", response_model=TokenOut, status_code=201, tags=["users"]
)
def issue_user_token(
    user_id: UserId,
    body: TokenCreate,
    principal: Annotated[Principal, Depends(require("users:write"))],
    response: Response,
    session: DbSession,
) -> TokenOut:
    """A bearer token for a principal (service account, device key, Open311 API key…)."""
    ttl = timedelta(hours=body.ttl_hours) if body.ttl_hours is not None else None
    token = service.issue_user_token(
        session=session, actor=principal, user_id=user_id, name=body.name, ttl=ttl
    )
    response.headers.update(NO_STORE)
    expires = datetime.now(UTC) + ttl if ttl is not None else None
    return TokenOut(access_token=token, expires_at=expires)
