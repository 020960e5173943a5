"""Citizen e-service applications: start, save pages, attach, submit, staff actions.

This module is the public face of the applications (the functions the API, CLI, pages
and simulation call); the parts live beside it and are re-exported here:

* :mod:`.access` — loading an application, who may see or change it, the handling org;
* :mod:`.clock` — the working-day clock and its pauses (:func:`deadline`);
* :mod:`.materials` — pulled and uploaded materials (:func:`add_attachment`,
  :func:`attachment_bytes`);
* :mod:`.notices` — transitions on the state machine and the notice each sends;
* :mod:`.issuing` — the e-certificate through the registry (:func:`certificate_values`);
* :mod:`.single_window` — fan-out to departments and joint issue;
* :mod:`.queries` — :func:`get_application`, :func:`my_applications`, :func:`staff_queue`;
* :mod:`.stats` — :func:`stats` (median / p90 working days, share pulled).

Functions take keyword-only arguments and a session and never commit. ``now`` (an aware
timestamp) is for simulations and tests; it defaults to the current time.

* The **applicant** (``eservices:apply``) starts an application for a catalogue item: a
  draft prefilled from the citizen registry (:mod:`.citizens`, the read audited), with
  every material the catalogue marks "pulled" attached from the citizen's e-licences; saves
  it page by page (:class:`FormInvalid` carries per-field errors); uploads the other
  materials (SHA-256 blob store, type and size limits, magic bytes checked); submits it
  with an idempotency key — a retried submission returns the same application, never a
  second one — and supplements it when asked.
* **Staff** of the handling org (``eservices:review`` / ``eservices:decide``) see their
  org's applications (:func:`staff_queue`; reads of one in full are audited) and act on
  them (:func:`act`): accept, review, request a supplement (the working-day clock stops
  until the applicant supplements), approve, reject, issue (the e-certificate comes from
  :func:`safecity.eservices.registry.issue_for_application`).
* Every transition is on the application's timeline, audited, announced on the outbox
  and sent to the applicant as a notice (SMS through the notification outbox).
* **Single window**: an item with department parts fans out on submission into one child
  application per department (their own deadlines and queues). When every child is
  approved, the platform issues every part's certificate and the parent at once; one
  rejected part rejects the parent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safecity.eservices import citizens, events, forms
from safecity.eservices.access import ORG_PREFIX, catalogue, department_org
from safecity.eservices.access import acting_applicant as _acting
from safecity.eservices.access import audit_application as _audit
from safecity.eservices.access import ensure_editable as _editable
from safecity.eservices.access import is_staff_reader as _is_staff_reader
from safecity.eservices.access import item_of as _item
from safecity.eservices.access import load_application as _load
from safecity.eservices.access import new_reference as _new_reference
from safecity.eservices.access import own_application as _own
from safecity.eservices.access import resolve_now as _now
from safecity.eservices.clock import SUPPLEMENT_PAUSE, deadline
from safecity.eservices.clock import elapsed_workdays as _elapsed
from safecity.eservices.clock import recompute_clock as _recompute_clock
from safecity.eservices.issuing import ATTRIBUTE_DEFAULTS, certificate_values
from safecity.eservices.issuing import issue_certificate as _issue
from safecity.eservices.materials import (
    FALLBACK_TYPES,
    FILENAME_RE,
    MAX_ATTACHMENT_BYTES,
    PULLED_TYPE,
    add_attachment,
    attachment_bytes,
)
from safecity.eservices.materials import missing_materials as _missing_materials
from safecity.eservices.materials import pull_materials as _pull
from safecity.eservices.models import Application, Pause
from safecity.eservices.notices import STATE_TEXT
from safecity.eservices.notices import transition as _transition
from safecity.eservices.queries import MAX_QUEUE, get_application, my_applications, staff_queue
from safecity.eservices.queries import read_application as _read
from safecity.eservices.schemas import ACTIONS, ApplicationRead
from safecity.eservices.single_window import fan_out as _fan_out
from safecity.eservices.single_window import sync_parent as _sync_parent
from safecity.eservices.stats import percentile, stats
from safecity.eservices.workdays import local_date
from safecity.eservices.workflow import APPLICANT_ACTIONS, APPLICATION, APPLY
from safecity.platform import outbox, workflow
from safecity.platform.db import new_id
from safecity.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from safecity.security import audit
from safecity.security.rbac import Principal

__all__ = [
    "ATTRIBUTE_DEFAULTS",
    "FALLBACK_TYPES",
    "FILENAME_RE",
    "KEY_RE",
    "MAX_ATTACHMENT_BYTES",
    "MAX_QUEUE",
    "ORG_PREFIX",
    "PULLED_TYPE",
    "STATE_TEXT",
    "SUPPLEMENT_PAUSE",
    "FormInvalid",
    "act",
    "add_attachment",
    "attachment_bytes",
    "catalogue",
    "certificate_values",
    "deadline",
    "department_org",
    "get_application",
    "my_applications",
    "percentile",
    "save_page",
    "staff_queue",
    "start_application",
    "stats",
    "submit",
]

KEY_RE = re.compile(r"^[A-Za-z0-9._:-]{8,120}$")


class FormInvalid(InvalidInput):
    """Answers that do not pass the form: ``field_errors`` lists :class:`forms.FieldError`.

    The API renders them as ``errors`` (``field``, ``code``, ``zh``, ``en``) in the
    problem+json body."""

    def __init__(self, detail: str, field_errors: Sequence[forms.FieldError]) -> None:
        super().__init__(detail, errors=[asdict(e) for e in field_errors])
        self.field_errors: list[forms.FieldError] = list(field_errors)


def _draft(app: Application, definition: forms.FormDefinition) -> forms.Draft:
    return forms.Draft(
        form_id=definition.id,
        form_version=app.form_version,
        reference=app.reference,
        answers=dict(app.answers or {}),
        current_page=app.current_page,
        created_at=app.created_at,
        updated_at=app.updated_at,
        submitted_at=app.submitted_at,
    )


def start_application(
    *, session: Session, principal: Principal, item_code: str, now: datetime | None = None
) -> ApplicationRead:
    """A new draft for ``item_code``, prefilled from the citizen's record, with every
    material the registry can supply pulled; positioned at its first unanswered page."""
    if not principal.can(APPLY):
        raise PermissionDenied(f"permission {APPLY!r} is required")
    if not isinstance(item_code, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", item_code):
        raise InvalidInput(f"{item_code!r} is not a catalogue item code")
    moment = _now(now)
    item = catalogue().get(item_code)
    definition = forms.form_for_item(item)
    record = citizens.get_record(session, principal.id)
    draft = forms.start_draft(definition, now=moment, citizen_record=citizens.as_prefill(record))
    org = department_org(session, item.departments[0])
    app = Application(
        id=new_id(),
        reference=_new_reference(session, local_date(moment)),
        item_code=item.code,
        department=item.departments[0],
        org_id=org.id,
        applicant_id=principal.id,
        state=APPLICATION.initial,
        form_id=definition.id,
        form_version=definition.version,
        answers=draft.answers,
        current_page=draft.current_page,
        is_parent=item.single_window,
        deadline_workdays=item.deadline.workdays,
        certificate_type=None if item.single_window else item.certificates[0].type,
        created_at=moment,
        updated_at=moment,
    )
    session.add(app)
    session.flush()
    entry = workflow.start(
        session, machine=APPLICATION, record=app, principal=principal, public=True
    )
    entry.at = moment
    pulled = _pull(session, app, item, record)
    if record is not None:
        audit.record(
            session,
            principal=principal,
            action="eservices.citizen.read",
            target_type="eservice_citizen",
            target_id=principal.id,
            purpose="prefill application",
            detail={"application": app.id, "pulled": pulled},
        )
    _audit(session, principal, "application.start", app, item=item.code)
    outbox.emit(
        session,
        type=events.STARTED,
        source=events.SOURCE,
        org_id=app.org_id,
        payload={"application_id": app.id, "item_code": item.code, "org_id": app.org_id},
    )
    session.flush()
    return _read(session, app, principal)


def save_page(
    *,
    session: Session,
    principal: Principal,
    application_id: str,
    page_id: str,
    answers: Mapping[str, Any],
    now: datetime | None = None,
) -> ApplicationRead:
    """Save one page of answers if they pass; else :class:`FormInvalid` (nothing saved)."""
    if not isinstance(answers, Mapping):
        raise InvalidInput("answers must be an object of question name to answer")
    moment = _now(now)
    app = _own(session, principal, application_id)
    _editable(app)
    definition = forms.form_for_item(_item(app))
    draft = _draft(app, definition)
    draft.submitted_at = None  # a supplement may correct answers too
    errors = forms.save_page(definition, draft, page_id, dict(answers), now=moment)
    if errors:
        fields = ", ".join(sorted({e.field for e in errors}))
        raise FormInvalid(f"page {page_id} has errors: {fields}", errors)
    app.answers = dict(draft.answers)
    app.current_page = draft.current_page
    app.updated_at = moment
    _audit(session, principal, "application.save_page", app, page=page_id)
    session.flush()
    return _read(session, app, principal)


def submit(
    *,
    session: Session,
    principal: Principal,
    application_id: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> ApplicationRead:
    """Submit a complete draft; the same idempotency key (or a second submission of the
    same application) returns the application already submitted, never a second one."""
    if not isinstance(idempotency_key, str) or not KEY_RE.fullmatch(idempotency_key):
        raise InvalidInput("idempotency_key must be 8-120 letters, digits or . _ : -")
    moment = _now(now)
    if not principal.can(APPLY):
        raise PermissionDenied(f"permission {APPLY!r} is required")
    earlier = session.scalars(
        select(Application).where(Application.idempotency_key == idempotency_key)
    ).one_or_none()
    if earlier is not None:
        if earlier.applicant_id != principal.id:
            raise Conflict("this idempotency key was used for another application")
        return _read(session, earlier, principal)
    app = _own(session, principal, application_id)
    if app.state != "draft":
        return _read(session, app, principal)  # already submitted (another key): the same one
    item = _item(app)
    definition = forms.form_for_item(item)
    draft = _draft(app, definition)
    try:
        cleaned = forms.submit(definition, draft, now=moment)
    except InvalidInput as exc:
        errs = exc.extra.get("errors")
        if isinstance(errs, list) and all(isinstance(e, forms.FieldError) for e in errs):
            raise FormInvalid(exc.detail, errs) from None
        raise
    missing = _missing_materials(session, app, item)
    if missing:
        raise InvalidInput(f"materials missing: {', '.join(missing)}", missing=missing)
    # claim the key first: a concurrent retry with the same key loses here, harmlessly
    try:
        with session.begin_nested():
            app.idempotency_key = idempotency_key
            session.flush()
    except IntegrityError:
        session.expire(app)
        earlier = session.scalars(
            select(Application).where(Application.idempotency_key == idempotency_key)
        ).one_or_none()
        if earlier is None or earlier.applicant_id != principal.id:
            raise Conflict("this idempotency key was used for another application") from None
        return _read(session, earlier, principal)
    today = local_date(moment)
    app.answers = cleaned
    app.current_page = None
    app.submitted_at = moment
    app.submitted_on = today
    app.updated_at = moment
    _recompute_clock(session, app, today)
    _transition(session, app, "submit", _acting(principal, app), moment)
    assert app.due_on is not None
    outbox.emit(
        session,
        type=events.SUBMITTED,
        source=events.SOURCE,
        org_id=app.org_id,
        payload={
            "application_id": app.id,
            "item_code": app.item_code,
            "org_id": app.org_id,
            "due_on": app.due_on.isoformat(),
        },
    )
    if item.single_window:
        _fan_out(session, app, item, principal, idempotency_key, moment)
    session.flush()
    return _read(session, app, principal)


def act(
    *,
    session: Session,
    principal: Principal,
    application_id: str,
    action: str,
    comment: str | None = None,
    now: datetime | None = None,
) -> ApplicationRead:
    """Move an application: ``accept``, ``review``, ``request_supplement`` (needs a
    comment), ``approve``, ``reject`` (needs a comment), ``issue`` (staff); ``supplement``
    (the applicant, after supplementing)."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}", allowed=list(ACTIONS))
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput("comment must be text")
    comment = (comment.strip() or None) if comment else None
    moment = _now(now)
    today = local_date(moment)
    if action in APPLICANT_ACTIONS:
        app = _own(session, principal, application_id)
        actor = _acting(principal, app)
    else:
        app = _load(session, application_id)
        if not _is_staff_reader(principal, app):
            raise NotFound("application not found")
        actor = principal
    if app.is_parent:
        raise IllegalTransition(
            "a single-window application moves with its department parts; act on a part",
            state=app.state,
        )
    if action == "issue" and app.parent_id is not None:
        raise IllegalTransition(
            "the parts of a single window are issued together once every part is approved",
            state=app.state,
        )
    _transition(session, app, action, actor, moment, comment=comment)
    _after(session, app, action, actor, moment, today, comment)
    if app.parent_id is not None:
        _sync_parent(session, app.parent_id, moment)
    session.flush()
    return _read(session, app, principal)


def _after(
    session: Session,
    app: Application,
    action: str,
    actor: Principal,
    moment: datetime,
    today: date,
    comment: str | None,
) -> None:
    """The bookkeeping of each action: timestamps, pauses, the clock, the certificate."""
    if action == "accept":
        app.accepted_at = moment
    elif action == "request_supplement":
        session.add(
            Pause(
                id=new_id(),
                application_id=app.id,
                reason=SUPPLEMENT_PAUSE,
                started_on=today,
                started_at=moment,
            )
        )
        app.paused_since = today
    elif action == "supplement":
        pause = session.scalars(
            select(Pause).where(Pause.application_id == app.id, Pause.ended_on.is_(None))
        ).first()
        if pause is not None:
            pause.ended_on = today
            pause.ended_at = moment
        app.paused_since = None
        app.sla_level = None  # a new due date: its alerts may be raised again
        session.flush()
        _recompute_clock(session, app, today)
    elif action in ("approve", "reject"):
        app.decided_at = moment
        app.decision_note = comment
        app.finished_workdays = _elapsed(session, app, today)
    elif action == "issue":
        _issue(session, app, actor, moment)
