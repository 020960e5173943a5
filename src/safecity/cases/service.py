"""Cases: open (from an alert, a citizen report or a call), read in scope, persons
(personal data: scoped and audited reads), notes, transitions, transfers, assignment.

Functions take keyword-only arguments and a session and never commit; every change is
audited and put on the case's timeline (record type ``case``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.cases import catalogue, codes, notices, stats
from safecity.cases.journal import journal
from safecity.cases.models import Case, CaseComment, CasePerson
from safecity.cases.schemas import (
    CaseCreate,
    CaseDetail,
    CaseRead,
    CommentRead,
    PersonIn,
    PersonRead,
)
from safecity.cases.workflow import APPROVE, CASE
from safecity.orgs import service as orgs
from safecity.platform import timeline, workflow
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.security import audit, rbac
from safecity.security.rbac import Principal
from safecity.security.redact import redact, scrub_text

RECORD = CASE.record_type
NUMBER_TRIES = 5


# --------------------------------------------------------------------------- reads


def scoped_query(principal: Principal) -> Select[Any]:
    return select(Case).where(rbac.scope_clause(principal, Case.org_id))


def read(principal: Principal, case: Case) -> CaseRead:
    """The case as ``principal`` sees it (the address masked outside the owning station)."""
    model = CaseRead.model_validate(case)
    if principal.org_id == case.org_id:
        return model
    return CaseRead.model_validate(redact(model, mask=True))


def list_cases(*, session: Session, principal: Principal, params: ListParams) -> Page[CaseRead]:
    return paginate(
        session=session,
        query=scoped_query(principal),
        params=params,
        item=lambda c: read(principal, c),
    )


def get_case(*, session: Session, principal: Principal, case_id: str) -> Case:
    """The case, or :class:`NotFound` when it does not exist or is out of scope."""
    return rbac.get_in_scope(session, Case, case_id, principal, what="case")


def comments(*, session: Session, case_id: str) -> list[CaseComment]:
    return list(
        session.scalars(
            select(CaseComment)
            .where(CaseComment.case_id == case_id)
            .order_by(CaseComment.created_at, CaseComment.id)
        )
    )


def detail(*, session: Session, principal: Principal, case_id: str) -> CaseDetail:
    case = get_case(session=session, principal=principal, case_id=case_id)
    entries = timeline.list_for(session, record_type=RECORD, record_id=case.id)
    return CaseDetail.model_validate(
        {
            **read(principal, case).model_dump(),
            "disclosed": catalogue.case_disclosed(case),
            "timeline": [timeline.TimelineEntryRead.model_validate(e) for e in entries],
            "transitions": [
                t.name
                for t in workflow.available_transitions(
                    machine=CASE, record=case, principal=principal
                )
            ],
            "comments": [
                CommentRead.model_validate(c) for c in comments(session=session, case_id=case.id)
            ],
        }
    )


def persons(*, session: Session, principal: Principal, case_id: str) -> list[PersonRead]:
    """The persons on a case: only staff of the owning station read them in full (others
    in scope get them masked); every read is audited."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    rows = session.scalars(
        select(CasePerson).where(CasePerson.case_id == case.id).order_by(CasePerson.created_at)
    )
    full = principal.org_id == case.org_id
    result = [
        PersonRead.model_validate(p)
        if full
        else PersonRead.model_validate(redact(PersonRead.model_validate(p), mask=True))
        for p in rows
    ]
    audit.record(
        session,
        principal=principal,
        action="cases.persons.read",
        target_type=RECORD,
        target_id=case.id,
        purpose="case handling",
        detail={"count": len(result), "full": full},
    )
    return result


# --------------------------------------------------------------------------- writes


def _station(session: Session, principal: Principal, org_id: str | None) -> str:
    chosen = org_id or principal.org_id
    if not chosen:
        raise InvalidInput("choose the station the case belongs to")
    try:
        return orgs.get_visible(session=session, principal=principal, org_id=chosen).id
    except NotFound:
        raise InvalidInput("the chosen station does not exist or is outside your scope") from None


def _unique_number(session: Session) -> str:
    for _ in range(NUMBER_TRIES):
        number = codes.new_number()
        if session.scalar(select(Case.id).where(Case.number == number)) is None:
            return number
    raise Conflict("could not draw a free case number; try again")  # pragma: no cover


def _add_person(session: Session, case: Case, data: PersonIn) -> CasePerson:
    person = CasePerson(case_id=case.id, **{k: v.strip() for k, v in data.model_dump().items()})
    session.add(person)
    return person


def open_case(
    session: Session,
    *,
    principal: Principal,
    source: str,
    case_type: str,
    org_id: str | None = None,
    alert_id: str | None = None,
    summary: str = "",
    address: str = "",
    victim_opt_out: bool = False,
    persons: list[PersonIn] | None = None,
) -> Case:
    """Open a case in ``received``. From an alert, the alert is read through the alerts
    service (in the caller's scope) and its station owns the case."""
    if source not in ("alert", "report", "call"):
        raise InvalidInput("source must be alert, report or call")
    if case_type not in catalogue.CATALOGUE:
        raise InvalidInput(f"case_type must be one of {', '.join(catalogue.CODES)}")
    if source == "alert":
        if not alert_id:
            raise InvalidInput("a case from an alert needs alert_id")
        try:
            alert = alerts.get_alert(session=session, principal=principal, alert_id=alert_id)
        except NotFound:
            raise InvalidInput("the alert does not exist or is outside your scope") from None
        station = alert.org_id
        summary = summary.strip() or f"{alert.category}: {alert.title_key}"
    elif alert_id:
        raise InvalidInput("alert_id is only for cases opened from an alert")
    else:
        station = _station(session, principal, org_id)
    now = utcnow()
    case = Case(
        number=_unique_number(session),
        org_id=station,
        case_type=case_type,
        source=source,
        alert_id=alert_id if source == "alert" else None,
        summary=summary.strip(),
        address=address.strip(),
        victim_opt_out=victim_opt_out,
        created_by=principal.id,
        created_at=now,
        updated_at=now,
    )
    workflow.start(session, machine=CASE, record=case, principal=principal, public=True)
    for person in persons or []:
        _add_person(session, case, person)
    audit.record(
        session,
        principal=principal,
        action="cases.open",
        target_type=RECORD,
        target_id=case.id,
        detail={"source": source, "type": case_type, "org": station, "alert": alert_id},
    )
    stats.track(session, case)
    return case


def create(*, session: Session, principal: Principal, data: CaseCreate) -> Case:
    fields = data.model_dump(exclude={"persons"})
    return open_case(session, principal=principal, persons=data.persons, **fields)


def add_person(
    *, session: Session, principal: Principal, case_id: str, data: PersonIn
) -> CasePerson:
    case = get_case(session=session, principal=principal, case_id=case_id)
    person = _add_person(session, case, data)
    session.flush()
    journal(
        session,
        case=case,
        principal=principal,
        kind="person",
        note=data.role,
        action="cases.person.add",
        detail={"person": person.id, "role": data.role},
    )
    return person


def transition(
    *,
    session: Session,
    principal: Principal,
    case_id: str,
    name: str,
    reason: str | None = None,
) -> Case:
    """Apply a workflow transition (404 out of scope, 403, 409 illegal, 422 no reason);
    registering issues the portal code, and every public stage notifies the victim."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    text = reason.strip() if reason and reason.strip() else None
    result = workflow.apply(
        session,
        machine=CASE,
        record=case,
        transition=name,
        principal=principal,
        fields={"reason": text},
        note=text,
    )
    stats.track(session, case, stage=result.to_state, at=result.timeline_entry.at)
    if result.to_state == "registered":
        notices.issue_code(session, case=case)
    if result.transition.public:
        notices.stage_changed(session, case=case)
    return case


def transfer(
    *, session: Session, principal: Principal, case_id: str, org_id: str, reason: str
) -> Case:
    """Move the case to another station (in the caller's scope); audited, on the timeline."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    target = _station(session, principal, org_id)
    if target == case.org_id:
        raise Conflict("the case already belongs to that station")
    old = case.org_id
    case.org_id = target
    case.assigned_officer_id = None
    case.updated_at = utcnow()
    timeline.add(
        session,
        record_type=RECORD,
        record_id=case.id,
        org_id=target,
        kind="transfer",
        actor_id=principal.id,
        note=reason.strip(),
    )
    timeline.add(
        session,
        record_type=RECORD,
        record_id=case.id,
        org_id=target,
        kind="unit",
        public=True,
    )
    audit.record(
        session,
        principal=principal,
        action="cases.transfer",
        target_type=RECORD,
        target_id=case.id,
        detail={"from": old, "to": target},
    )
    stats.track(session, case)
    return case


def assign(*, session: Session, principal: Principal, case_id: str, officer_id: str | None) -> Case:
    case = get_case(session=session, principal=principal, case_id=case_id)
    case.assigned_officer_id = officer_id
    case.updated_at = utcnow()
    journal(
        session,
        case=case,
        principal=principal,
        kind="assigned",
        note=officer_id or "",
        action="cases.assign",
        detail={"officer": officer_id},
    )
    return case


def add_note(
    *, session: Session, principal: Principal, case_id: str, text: str, public: bool
) -> timeline.TimelineEntry:
    """An internal note, or a public one (phone and ID numbers masked) the portal shows."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    note = scrub_text(text.strip()) if public else text.strip()
    entry = timeline.add(
        session,
        record_type=RECORD,
        record_id=case.id,
        org_id=case.org_id,
        kind="public_note" if public else "note",
        actor_id=principal.id,
        note=note,
        public=public,
    )
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="cases.note",
        target_type=RECORD,
        target_id=case.id,
        detail={"public": public, "timeline": entry.id},
    )
    return entry


DISCLOSURE_STATES = ("registered", "investigating", "solved", "suspended", "closed")


def set_disclosure(
    *,
    session: Session,
    principal: Principal,
    case_id: str,
    override: bool | None,
    victim_opt_out: bool | None,
    reason: str,
) -> Case:
    """A supervisor overrides the type's disclosure policy (audited, with a reason), or
    records the victim's opt-out; a case that becomes disclosed after registration gets
    its portal code then."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    if not principal.can(APPROVE):
        raise PermissionDenied(f"permission {APPROVE!r} is required to change disclosure")
    before = catalogue.case_disclosed(case)
    case.disclosure_override = override
    if victim_opt_out is not None:
        case.victim_opt_out = victim_opt_out
    case.updated_at = utcnow()
    after = catalogue.case_disclosed(case)
    timeline.add(
        session,
        record_type=RECORD,
        record_id=case.id,
        org_id=case.org_id,
        kind="disclosure",
        actor_id=principal.id,
        note=reason.strip(),
    )
    audit.record(
        session,
        principal=principal,
        action="cases.disclosure",
        target_type=RECORD,
        target_id=case.id,
        detail={
            "override": override,
            "victim_opt_out": case.victim_opt_out,
            "before": before,
            "after": after,
        },
    )
    stats.track(session, case)
    if after and not before and case.state in DISCLOSURE_STATES:
        notices.issue_code(session, case=case)
    return case


# --------------------------------------------------------------------------- linkage feed


@dataclass(frozen=True, slots=True)
class LinkablePerson:
    """A case person as the person index (:mod:`safecity.linkage.index`) takes it in."""

    id: str
    org_id: str
    role: str
    name: str
    phone: str
    id_number: str
    address: str
    created_at: datetime


LINKABLE_ROLES = ("victim", "suspect", "witness")


def persons_for_linkage(
    session: Session, *, since: datetime | None, limit: int
) -> list[LinkablePerson]:
    """Case persons created at or after ``since`` (oldest first, at most ``limit``), with
    their case's org, for the person index. Not scoped and not audited here: the only
    caller is the linkage domain, which scopes by ``org_id`` and audits its own ingest
    (``linkage.records.ingest``)."""
    query = (
        select(CasePerson, Case.org_id)
        .join(Case, Case.id == CasePerson.case_id)
        .where(CasePerson.role.in_(LINKABLE_ROLES))
        .order_by(CasePerson.created_at, CasePerson.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(CasePerson.created_at >= since)
    return [
        LinkablePerson(
            id=p.id,
            org_id=org_id,
            role=p.role,
            name=p.name,
            phone=p.phone,
            id_number=p.id_number,
            address=p.address,
            created_at=p.created_at,
        )
        for p, org_id in session.execute(query)
    ]
