"""Helpers of the e-service application tests: people, orgs, a filled application."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from safecity.eservices import citizens, service
from safecity.eservices.schemas import ApplicationRead
from safecity.orgs.models import Org
from safecity.platform.runtime import Runtime
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.security.rbac import Principal
from tests.conftest import Actor, City

PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

NCR_ANSWERS: dict[str, dict[str, Any]] = {
    "where": {"apply_at": "household"},
    "purpose": {"purpose": "employment"},
    "recipient": {"recipient_org": "Example Ltd"},
    "declaration": {"declaration": True},
}
FOREIGNER_ANSWERS: dict[str, dict[str, Any]] = {
    "passport": {"passport_expiry": "2031-01-01"},
    "employer": {"employer_name": "Example Ltd", "employer_credit_code": "91310000MA1FL0000X"},
    "job": {
        "position": "Engineer",
        "start_date": "2026-12-01",
        "contract_months": 24,
        "annual_salary_cny": 600000,
    },
    "category": {"permit_category": "B"},
    "residence": {"residence_months": 24},
    "family": {"with_family": False},
    "declaration": {"declaration": True},
}


def at(day: str, hour: int = 2) -> datetime:
    """A UTC moment on a Beijing calendar day (02:00 UTC = 10:00 in Shanghai)."""
    y, m, d = (int(x) for x in day.split("-"))
    return datetime(y, m, d, hour, tzinfo=UTC)


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def principal(session: Session, actor: Actor) -> Principal:
    user = session.get(User, actor.user_id)
    assert user is not None
    return principal_for(session=session, user=user, auth_method="token")


def dept_org(runtime: Runtime, department: str) -> Org:
    with runtime.sessions.begin() as s:
        org = service.department_org(s, department)
        s.expunge(org)
        return org


@dataclass
class People:
    citizen: Actor
    other_citizen: Actor
    police: Actor  # department staff of the police station department
    exit_entry: Actor  # staff of another department
    hr: Actor


def people(runtime: Runtime, city: City, make_actor: Callable[..., Actor]) -> People:
    citizen = make_actor("citizen", city.city)
    other = make_actor("citizen", city.city)
    with runtime.sessions.begin() as s:
        citizens.seed_profile(s, user_id=citizen.user_id, profile=citizens.resident_profile())
        citizens.seed_profile(s, user_id=other.user_id, profile=citizens.resident_profile(1))
    return People(
        citizen=citizen,
        other_citizen=other,
        police=make_actor("department_staff", dept_org(runtime, "psb-police-station")),
        exit_entry=make_actor("department_staff", dept_org(runtime, "psb-exit-entry")),
        hr=make_actor("department_staff", dept_org(runtime, "hr")),
    )


def fill(
    session: Session,
    who: Principal,
    app_id: str,
    pages: dict[str, dict[str, Any]],
    now: datetime | None = None,
) -> None:
    for page, answers in pages.items():
        service.save_page(
            session=session,
            principal=who,
            application_id=app_id,
            page_id=page,
            answers=answers,
            now=now,
        )


def submitted_ncr(
    runtime: Runtime, actor: Actor, *, now: datetime, key: str = "key-ncr-0001"
) -> str:
    """A no-criminal-record application submitted by ``actor`` at ``now``; its id."""
    with runtime.sessions.begin() as s:
        who = principal(s, actor)
        app = service.start_application(
            session=s, principal=who, item_code="no-criminal-record", now=now
        )
        fill(s, who, app.id, NCR_ANSWERS, now)
        service.submit(
            session=s, principal=who, application_id=app.id, idempotency_key=key, now=now
        )
        return app.id


def act(
    runtime: Runtime,
    actor: Actor,
    app_id: str,
    action: str,
    *,
    now: datetime,
    comment: str | None = None,
) -> ApplicationRead:
    with runtime.sessions.begin() as s:
        return service.act(
            session=s,
            principal=principal(s, actor),
            application_id=app_id,
            action=action,
            comment=comment,
            now=now,
        )
