"""Role-based access control × organisational scope.

Authorisation is declared, not remembered: every route either depends on
``require("domain:action")`` or on :func:`public`. ``tests/security/test_route_permissions``
walks ``app.routes`` and fails on a route that declares neither.

Scope: a principal sees its home org's subtree plus any granted subtrees;
``Principal.visible_org_ids`` is ``None`` for city-wide roles (no filter needed).
Service queries apply the scope with :func:`scope_clause`; a single record out of scope
is reported as 404 (never 403), so its existence does not leak.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from fastapi import Request
from sqlalchemy import ColumnElement, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from safecity.platform.errors import NotFound, PermissionDenied, Unauthenticated

# Roles of non-human principals come first (lowest precedence for ``primary_role``).
MACHINE_ROLES: tuple[str, ...] = ("device", "open311_client")

ROLES: tuple[str, ...] = (
    *MACHINE_ROLES,
    "citizen",
    "officer",
    "supervisor",
    "analyst",
    "department_staff",
    "auditor",
    "admin",
)

# Permissions each role holds. Domains add theirs with :func:`grant`.
ROLE_PERMISSIONS: dict[str, set[str]] = {
    "device": {"self:read"},  # sensor/gateway keys; sensing grants its ingest permission
    "open311_client": {"self:read"},  # external Open311 systems; the portal grants more
    "citizen": {"self:read"},
    "officer": {"self:read", "console:view", "orgs:read", "events:read"},
    "supervisor": {
        "self:read",
        "console:view",
        "orgs:read",
        "events:read",
        "users:read",
        "workflow:approve",
    },
    "analyst": {"self:read", "console:view", "orgs:read", "events:read"},
    "department_staff": {"self:read", "console:view", "orgs:read"},
    "auditor": {"self:read", "console:view", "audit:read", "audit:verify"},
    "admin": {
        "self:read",
        "console:view",
        "orgs:read",
        "orgs:write",
        "users:read",
        "users:write",
        "events:read",
        "jobs:run",
        "retention:run",
        "workflow:approve",
    },
}

# Roles whose holders see the whole city regardless of their home org.
CITY_WIDE_ROLES = frozenset({"admin", "auditor"})


def grant(role: str, *permissions: str) -> None:
    """Give ``role`` more permissions (called by domains at import time)."""
    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown role {role!r}")
    ROLE_PERMISSIONS[role].update(permissions)


def permissions_for(roles: frozenset[str]) -> frozenset[str]:
    perms: set[str] = set()
    for role in roles:
        perms |= ROLE_PERMISSIONS.get(role, set())
    return frozenset(perms)


@dataclass(frozen=True)
class Principal:
    """Who is acting: a person or a non-human principal, with roles and scope."""

    id: str
    kind: str  # user | service | device | apikey
    username: str
    roles: frozenset[str]
    org_id: str
    visible_org_ids: frozenset[str] | None  # None = city-wide
    auth_method: str = "token"  # token | session | oidc
    session_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def permissions(self) -> frozenset[str]:
        return permissions_for(self.roles)

    @property
    def primary_role(self) -> str:
        for role in reversed(ROLES):
            if role in self.roles:
                return role
        return "none"

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def sees_org(self, org_id: str | None) -> bool:
        if self.visible_org_ids is None:
            return True
        return org_id is not None and org_id in self.visible_org_ids


def scope_clause(
    principal: Principal, org_column: InstrumentedAttribute[Any]
) -> ColumnElement[bool]:
    """A WHERE clause limiting ``org_column`` to what ``principal`` may see."""
    if principal.visible_org_ids is None:
        return true()
    return org_column.in_(sorted(principal.visible_org_ids))


def ensure_in_scope(principal: Principal, org_id: str | None, *, what: str = "record") -> None:
    """Raise 404 (not 403) for a record outside the principal's scope."""
    if not principal.sees_org(org_id):
        raise NotFound(f"{what} not found")


class _Scoped(Protocol):
    org_id: Any


ScopedT = TypeVar("ScopedT", bound=_Scoped)


def get_in_scope(
    session: Session, model: type[ScopedT], record_id: str, principal: Principal, *, what: str
) -> ScopedT:
    """The record with this id owned by an org the principal sees, else 404 (missing and
    out of scope answer alike)."""
    record = session.get(model, record_id)
    if record is None:
        raise NotFound(f"{what} not found")
    ensure_in_scope(principal, record.org_id, what=what)
    return record


PERMISSION_ATTR = "__safecity_permission__"
PUBLIC_ATTR = "__safecity_public__"


def require(permission: str) -> Callable[..., Principal]:
    """FastAPI dependency factory: authenticate, then check ``permission``.

    Use as ``principal: Annotated[Principal, Depends(require("orgs:read"))]``.
    """
    from safecity.platform.runtime import DbSession
    from safecity.security.auth import authenticate

    def dependency(request: Request, session: DbSession) -> Principal:
        principal = authenticate(request, session)
        if principal is None:
            raise Unauthenticated("log in or send a bearer token")
        if not principal.can(permission):
            raise PermissionDenied(f"permission {permission!r} is required")
        request.state.principal = principal
        return principal

    # Real objects, not strings: with ``from __future__ import annotations`` FastAPI could
    # not resolve the locally imported ``DbSession`` and took ``session`` for a query param.
    dependency.__annotations__ = {"request": Request, "session": DbSession, "return": Principal}
    setattr(dependency, PERMISSION_ATTR, permission)
    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


def public() -> None:
    """Marks a route as deliberately public (no login): ``dependencies=[Depends(public)]``."""


setattr(public, PUBLIC_ATTR, True)


def mark_docs_public(app: Any) -> None:
    """Declare FastAPI's own OpenAPI/docs routes public (they cannot take dependencies).

    Called by ``create_app``; the route-permission test then needs no exemption.
    """
    from starlette.routing import Route

    paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    for route in app.router.routes:
        endpoint = getattr(route, "endpoint", None)
        if (
            isinstance(route, Route)
            and route.path in paths
            and getattr(endpoint, "__module__", "") == "fastapi.applications"
        ):
            setattr(endpoint, PUBLIC_ATTR, True)
