"""Disputes: record, read in scope (personal data only for the owning station), change,
move through mediation, follow up, remind, and count for the station dashboard.

Functions take keyword-only arguments and a session and never commit; every change is
audited, put on the dispute's timeline and announced by an outbox event in the caller's
transaction.
"""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from safecity.disputes import events
from safecity.disputes.models import CATEGORIES, Dispute, FollowUp
from safecity.disputes.schemas import (
    DashboardRead,
    DisputeCreate,
    DisputeDetail,
    DisputeRead,
    DisputeUpdate,
    FollowUpCreate,
    FollowUpRead,
    OverdueRead,
)
from safecity.disputes.workflow import CLOSED_STATES, DISPUTE, OPEN_STATES, STATES
from safecity.orgs import service as orgs
from safecity.platform import outbox, timeline, workflow
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.security import audit, rbac
from safecity.security.rbac import Principal
from safecity.security.redact import redact

RECORD = DISPUTE.record_type
OVERDUE_LIST = 50


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInput(f"{what} must carry a time zone")
    return value


# --------------------------------------------------------------------------- reads


def scoped_query(principal: Principal) -> Select[Any]:
    return select(Dispute).where(rbac.scope_clause(principal, Dispute.org_id))


def sees_personal(principal: Principal, dispute: Dispute) -> bool:
    """Only staff of the dispute's own station read the parties' names, phones, address."""
    return principal.org_id == dispute.org_id


def read(principal: Principal, dispute: Dispute) -> DisputeRead:
    """The dispute as ``principal`` may see it (personal fields masked outside the station)."""
    model = DisputeRead.model_validate(dispute)
    if sees_personal(principal, dispute):
        return model
    return DisputeRead.model_validate(redact(model, mask=True))


def list_disputes(
    *, session: Session, principal: Principal, params: ListParams
) -> Page[DisputeRead]:
    return paginate(
        session=session,
        query=scoped_query(principal),
        params=params,
        item=lambda d: read(principal, d),
    )


def get_dispute(*, session: Session, principal: Principal, dispute_id: str) -> Dispute:
    """The dispute, or :class:`NotFound` when it does not exist or is out of scope."""
    return rbac.get_in_scope(session, Dispute, dispute_id, principal, what="dispute")


def follow_ups(*, session: Session, dispute: Dispute) -> list[FollowUp]:
    return list(
        session.scalars(
            select(FollowUp)
            .where(FollowUp.dispute_id == dispute.id)
            .order_by(FollowUp.happened_at, FollowUp.created_at)
        )
    )


def allowed_transitions(*, dispute: Dispute, principal: Principal) -> list[str]:
    return [
        t.name
        for t in workflow.available_transitions(
            machine=DISPUTE, record=dispute, principal=principal
        )
    ]


def detail(*, session: Session, principal: Principal, dispute_id: str) -> DisputeDetail:
    dispute = get_dispute(session=session, principal=principal, dispute_id=dispute_id)
    entries = timeline.list_for(session, record_type=RECORD, record_id=dispute.id)
    visible = sees_personal(principal, dispute)
    return DisputeDetail.model_validate(
        {
            **read(principal, dispute).model_dump(),
            "personal_visible": visible,
            "follow_ups": [
                FollowUpRead.model_validate(f)
                if visible
                else FollowUpRead.model_validate(redact(FollowUpRead.model_validate(f)))
                for f in follow_ups(session=session, dispute=dispute)
            ],
            "timeline": [timeline.TimelineEntryRead.model_validate(e) for e in entries],
            "transitions": allowed_transitions(dispute=dispute, principal=principal),
        }
    )


# --------------------------------------------------------------------------- writes


def _station(session: Session, principal: Principal, data: DisputeCreate) -> str:
    if (data.lat is None) != (data.lng is None):
        raise InvalidInput("give both lat and lng, or neither")
    if data.lat is not None and data.lng is not None:
        station = orgs.org_for_point(session=session, lat=data.lat, lng=data.lng)
        if station is not None:
            return station.id
    org_id = data.org_id or principal.org_id
    if not org_id:
        raise InvalidInput("choose the station the dispute belongs to")
    try:
        return orgs.get_visible(session=session, principal=principal, org_id=org_id).id
    except NotFound:
        raise InvalidInput("the chosen station does not exist or is outside your scope") from None


def create_dispute(*, session: Session, principal: Principal, data: DisputeCreate) -> Dispute:
    if data.category not in CATEGORIES:
        raise InvalidInput(f"category must be one of {', '.join(CATEGORIES)}")
    now = utcnow()
    dispute = Dispute(
        org_id=_station(session, principal, data),
        category=data.category,
        description=data.description.strip(),
        building=data.building.strip(),
        address=data.address.strip(),
        lat=data.lat,
        lng=data.lng,
        party_a_name=data.party_a_name.strip(),
        party_a_phone=data.party_a_phone.strip(),
        party_b_name=data.party_b_name.strip(),
        party_b_phone=data.party_b_phone.strip(),
        assigned_officer_id=data.assigned_officer_id,
        reported_at=now,
        next_follow_up_at=_aware(data.next_follow_up_at, "next_follow_up_at"),
        created_by=principal.id,
        created_at=now,
        updated_at=now,
    )
    workflow.start(session, machine=DISPUTE, record=dispute, principal=principal)
    audit.record(
        session,
        principal=principal,
        action="disputes.report",
        target_type=RECORD,
        target_id=dispute.id,
        detail={"category": dispute.category, "org": dispute.org_id},
    )
    outbox.emit(
        session,
        type=events.REPORTED,
        source=events.SOURCE,
        org_id=dispute.org_id,
        payload={"dispute_id": dispute.id, "org_id": dispute.org_id, "category": dispute.category},
    )
    return dispute


def update_dispute(
    *, session: Session, principal: Principal, dispute_id: str, data: DisputeUpdate
) -> Dispute:
    dispute = get_dispute(session=session, principal=principal, dispute_id=dispute_id)
    changes = data.model_dump(exclude_unset=True)
    changed = sorted(k for k, v in changes.items() if getattr(dispute, k) != v)
    if not changed:
        return dispute
    for key in changed:
        value = changes[key]
        setattr(dispute, key, value.strip() if isinstance(value, str) else value)
    dispute.updated_at = utcnow()
    timeline.add(
        session,
        record_type=RECORD,
        record_id=dispute.id,
        org_id=dispute.org_id,
        kind="updated",
        actor_id=principal.id,
        note=", ".join(changed),
    )
    audit.record(
        session,
        principal=principal,
        action="disputes.update",
        target_type=RECORD,
        target_id=dispute.id,
        detail={"fields": changed},
    )
    outbox.emit(
        session,
        type=events.UPDATED,
        source=events.SOURCE,
        org_id=dispute.org_id,
        payload={"dispute_id": dispute.id, "org_id": dispute.org_id, "fields": changed},
    )
    return dispute


def transition(
    *,
    session: Session,
    principal: Principal,
    dispute_id: str,
    name: str,
    notes: str | None = None,
) -> Dispute:
    """Apply a mediation transition (404 out of scope, 403, 409 illegal, 422 no notes)."""
    dispute = get_dispute(session=session, principal=principal, dispute_id=dispute_id)
    text = notes.strip() if notes and notes.strip() else None
    workflow.apply(
        session,
        machine=DISPUTE,
        record=dispute,
        transition=name,
        principal=principal,
        note=text,
        fields={"notes": text},
    )
    return dispute


def add_follow_up(
    *, session: Session, principal: Principal, dispute_id: str, data: FollowUpCreate
) -> FollowUp:
    """Note a visit, call or mediation session; its ``next_due_at`` becomes the dispute's
    next follow-up (``None`` clears it)."""
    dispute = get_dispute(session=session, principal=principal, dispute_id=dispute_id)
    now = utcnow()
    happened = _aware(data.happened_at, "happened_at") or now
    next_due = _aware(data.next_due_at, "next_due_at")
    if next_due is not None and next_due <= happened:
        raise InvalidInput("the next follow-up must be due after this one")
    if next_due is not None and dispute.state in CLOSED_STATES:
        raise InvalidInput("a closed dispute has no next follow-up; reopen it first")
    item = FollowUp(
        dispute_id=dispute.id,
        org_id=dispute.org_id,
        kind=data.kind,
        happened_at=happened,
        notes=data.notes.strip(),
        next_due_at=next_due,
        actor_id=principal.id,
        created_at=now,
    )
    session.add(item)
    dispute.next_follow_up_at = next_due
    dispute.updated_at = now
    session.flush()
    timeline.add(
        session,
        record_type=RECORD,
        record_id=dispute.id,
        org_id=dispute.org_id,
        kind="follow_up",
        actor_id=principal.id,
        note=f"{data.kind}: {item.notes}" if item.notes else data.kind,
        at=happened,
    )
    audit.record(
        session,
        principal=principal,
        action="disputes.follow_up",
        target_type=RECORD,
        target_id=dispute.id,
        detail={"follow_up": item.id, "kind": data.kind},
    )
    outbox.emit(
        session,
        type=events.FOLLOWED_UP,
        source=events.SOURCE,
        org_id=dispute.org_id,
        payload={
            "dispute_id": dispute.id,
            "org_id": dispute.org_id,
            "follow_up_id": item.id,
            "kind": data.kind,
            "next_due_at": next_due.isoformat() if next_due else None,
        },
    )
    return item


# --------------------------------------------------------------------------- overdue, dashboard


def overdue_query(now: datetime) -> Select[Any]:
    """Open disputes whose next follow-up is due before ``now``, most overdue first."""
    return (
        select(Dispute)
        .where(
            Dispute.state.in_(OPEN_STATES),
            Dispute.next_follow_up_at.is_not(None),
            Dispute.next_follow_up_at < now,
        )
        .order_by(Dispute.next_follow_up_at, Dispute.id)
    )


def _scope_and_station(session: Session, principal: Principal, org_id: str | None) -> Select[Any]:
    query = scoped_query(principal)
    if org_id is not None:
        station = orgs.get_visible(session=session, principal=principal, org_id=org_id)
        query = query.where(Dispute.org_id == station.id)
    return query


def dashboard(
    *,
    session: Session,
    principal: Principal,
    org_id: str | None = None,
    now: datetime | None = None,
) -> DashboardRead:
    """Counts by state and category, overdue follow-ups and the median days from report to
    resolution (agreement, referral or closing), for ``org_id`` or the caller's scope."""
    moment = now or utcnow()
    base = _scope_and_station(session, principal, org_id).subquery()
    by_state = dict.fromkeys(STATES, 0)
    for state, n in session.execute(select(base.c.state, func.count()).group_by(base.c.state)):
        by_state[str(state)] = int(n)
    by_category = dict.fromkeys(CATEGORIES, 0)
    for cat, n in session.execute(select(base.c.category, func.count()).group_by(base.c.category)):
        by_category[str(cat)] = int(n)
    scoped = _scope_and_station(session, principal, org_id)
    overdue_rows = list(
        session.scalars(
            overdue_query(moment).where(Dispute.id.in_(scoped.with_only_columns(Dispute.id)))
        )
    )
    durations = [
        (resolved - reported).total_seconds() / 86400
        for reported, resolved in session.execute(
            select(base.c.reported_at, base.c.resolved_at).where(
                base.c.state.in_(CLOSED_STATES), base.c.resolved_at.is_not(None)
            )
        )
    ]
    return DashboardRead(
        org_id=org_id,
        total=sum(by_state.values()),
        open=sum(by_state[s] for s in OPEN_STATES),
        by_state=by_state,
        by_category=by_category,
        overdue_follow_ups=len(overdue_rows),
        overdue=[
            OverdueRead(
                id=d.id,
                org_id=d.org_id,
                category=d.category,
                state=d.state,
                next_follow_up_at=d.next_follow_up_at,
                days_overdue=int((moment - d.next_follow_up_at).total_seconds() // 86400),
            )
            for d in overdue_rows[:OVERDUE_LIST]
            if d.next_follow_up_at is not None
        ],
        resolved=len(durations),
        median_days_to_resolution=round(statistics.median(durations), 2) if durations else None,
    )
