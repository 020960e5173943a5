"""Loading an e-service application and deciding who may see or change it.

The shared ground of the application modules (:mod:`.service` and its helpers): the
catalogue, the handling org of a department (created on first use), the applicant as a
workflow actor, the 404-for-anyone-else loaders (:func:`own_application` for the applicant,
:func:`visible_application` for the applicant or staff of the handling org), reference
numbers and the audit record of an action on an application.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices import forms
from safecity.eservices.catalogue import Catalogue, ServiceItem, default_catalogue
from safecity.eservices.models import Application
from safecity.eservices.workflow import APPLY, READ, RECORD_TYPE
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.db import utcnow
from safecity.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from safecity.security import audit
from safecity.security.rbac import Principal

ORG_PREFIX = "eservices-"


def catalogue() -> Catalogue:
    return default_catalogue()


def resolve_now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    return now


def department_org(session: Session, department: str) -> Org:
    """The org of a catalogue department (``eservices-<code>`` under the city; created on
    first use, so a fresh city needs no extra set-up)."""
    code = ORG_PREFIX + department
    try:
        return orgs.get_by_code(session=session, code=code)
    except NotFound:
        pass
    city = session.scalars(select(Org).where(Org.kind == "city").order_by(Org.path)).first()
    if city is None:
        raise ServiceUnavailable("no city organisation exists yet; seed the org tree first")
    name = catalogue().departments.get(department)
    if name is None:
        raise InvalidInput(f"unknown department {department!r}")
    return orgs.create(
        session=session,
        code=code,
        kind="department",
        name_zh=name.zh,
        name_en=name.en,
        parent_id=city.id,
        actor=audit.SYSTEM,
        purpose="e-services department",
    )


def acting_applicant(principal: Principal, app: Application) -> Principal:
    """The applicant as a workflow actor, scoped to the application's handling org."""
    return Principal(
        id=principal.id,
        kind=principal.kind,
        username=principal.username,
        roles=principal.roles,
        org_id=principal.org_id,
        visible_org_ids=frozenset({app.org_id}),
        auth_method=principal.auth_method,
        session_id=principal.session_id,
        extra=principal.extra,
    )


def is_staff_reader(principal: Principal, app: Application) -> bool:
    return principal.can(READ) and principal.sees_org(app.org_id) and app.state != "draft"


def load_application(session: Session, application_id: str) -> Application:
    if not isinstance(application_id, str) or not application_id or len(application_id) > 64:
        raise NotFound("application not found")
    app = session.get(Application, application_id)
    if app is None:
        raise NotFound("application not found")
    return app


def own_application(session: Session, principal: Principal, application_id: str) -> Application:
    """The principal's own application (404 for anyone else's)."""
    if not principal.can(APPLY):
        raise PermissionDenied(f"permission {APPLY!r} is required")
    app = load_application(session, application_id)
    if app.applicant_id != principal.id:
        raise NotFound("application not found")
    return app


def visible_application(session: Session, principal: Principal, application_id: str) -> Application:
    """The application if the principal applied for it or handles it (404 otherwise)."""
    app = load_application(session, application_id)
    if app.applicant_id == principal.id or is_staff_reader(principal, app):
        return app
    raise NotFound("application not found")


def item_of(app: Application) -> ServiceItem:
    return catalogue().get(app.item_code)


def ensure_editable(app: Application) -> None:
    if app.state not in ("draft", "supplement_requested"):
        raise IllegalTransition(
            f"the application is {app.state}; it can no longer be changed", state=app.state
        )


def new_reference(session: Session, today: date) -> str:
    for _ in range(8):
        ref = forms.new_reference(today)
        if session.scalar(select(Application.id).where(Application.reference == ref)) is None:
            return ref
    raise Conflict("could not allocate a reference number; try again")  # pragma: no cover


def audit_application(
    session: Session,
    principal: Principal,
    action: str,
    app: Application,
    *,
    purpose: str | None = None,
    **detail: Any,
) -> None:
    audit.record(
        session,
        principal=principal,
        action=f"eservices.{action}",
        target_type=RECORD_TYPE,
        target_id=app.id,
        purpose=purpose,
        detail=detail or None,
    )
