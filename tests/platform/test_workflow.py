"""The declarative state machine: apply, its checks, audit/timeline/outbox, exports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.platform import timeline, workflow
from safecity.platform.errors import (
    Conflict,
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from safecity.platform.events import validate
from safecity.platform.outbox import OutboxEvent
from safecity.platform.problems import install_problem_handlers
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal, public
from tests.conftest import City
from tests.platform.test_workflow_support import TICKET, Ticket, principal, reset_table

pytestmark = pytest.mark.db


@pytest.fixture
def org_ids(runtime: Runtime, city: City) -> dict[str, frozenset[str]]:
    with runtime.sessions() as s:
        return {
            "hp": frozenset(orgs.subtree_ids(session=s, org_id=city.districts[0].id)),
            "pd": frozenset(orgs.subtree_ids(session=s, org_id=city.districts[1].id)),
        }


@pytest.fixture
def station(city: City) -> str:
    return city.stations[0].id  # in district hp


@pytest.fixture
def people(city: City, org_ids: dict[str, frozenset[str]]) -> dict[str, Principal]:
    hp, pd = city.districts[0].id, city.districts[1].id
    return {
        "officer": principal("officer", hp, org_ids["hp"]),
        "supervisor": principal("supervisor", hp, org_ids["hp"]),
        "other_district": principal("supervisor", pd, org_ids["pd"]),
        "admin": principal("admin", city.city.id, None),
        "auditor": principal("auditor", city.city.id, None),
    }


@pytest.fixture
def db(runtime: Runtime) -> Iterator[Session]:
    reset_table(runtime.engine)
    with runtime.sessions() as s:
        yield s


def new_ticket(session: Session, org_id: str, state: str = "new") -> Ticket:
    ticket = Ticket(org_id=org_id, state=state)
    session.add(ticket)
    session.commit()
    return ticket


def counts(session: Session, record_id: str) -> tuple[int, int, int]:
    n_timeline = session.scalar(
        select(func.count())
        .select_from(timeline.TimelineEntry)
        .where(timeline.TimelineEntry.record_id == record_id)
    )
    n_audit = session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.target_id == record_id)
    )
    n_events = session.scalar(select(func.count()).select_from(OutboxEvent))
    n_pending = len(audit.pending_records(session))  # audit rows are chained at commit
    return (n_timeline or 0, (n_audit or 0) + n_pending, n_events or 0)


def test_apply_changes_state_and_writes_audit_timeline_and_event(
    db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station)
    result = workflow.apply(
        db, machine=TICKET, record=ticket, transition="triage", principal=people["officer"]
    )
    db.commit()
    db.expire_all()

    assert db.get(Ticket, ticket.id).state == "triaged"  # type: ignore[union-attr]
    assert (result.from_state, result.to_state) == ("new", "triaged")

    entries = timeline.list_for(db, record_type="wf_ticket", record_id=ticket.id)
    assert [(e.kind, e.from_state, e.to_state, e.actor_id) for e in entries] == [
        ("transition", "new", "triaged", people["officer"].id)
    ]
    assert entries[0].org_id == station
    assert entries[0].public is False

    audit_rows = list(db.scalars(select(AuditEntry).where(AuditEntry.target_id == ticket.id)))
    assert len(audit_rows) == 1
    assert audit_rows[0].action == "wf_ticket.triage"
    assert audit_rows[0].actor_id == people["officer"].id
    assert audit_rows[0].detail["from"] == "new"
    assert audit_rows[0].detail["to"] == "triaged"

    event = db.scalars(select(OutboxEvent).where(OutboxEvent.type == workflow.TRANSITIONED)).one()
    assert event.type == workflow.TRANSITIONED
    assert event.org_id == station
    assert event.payload["record_id"] == ticket.id
    assert event.payload["to_state"] == "triaged"
    validate(event.type, event.payload)


def test_illegal_transition_raises_409_and_changes_nothing(
    db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station)
    before = counts(db, ticket.id)
    with pytest.raises(IllegalTransition) as info:
        workflow.apply(
            db, machine=TICKET, record=ticket, transition="resolve", principal=people["admin"]
        )
    assert info.value.status == 409
    assert info.value.extra["allowed"] == ["triage", "reject"]
    assert ticket.state == "new"
    assert not db.new
    assert not db.dirty
    assert counts(db, ticket.id) == before


def test_permission_scope_reason_guard_are_checked(
    db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station)
    before = counts(db, ticket.id)

    # Out of org scope: 404, whatever the transition.
    with pytest.raises(NotFound):
        workflow.apply(
            db,
            machine=TICKET,
            record=ticket,
            transition="reject",
            principal=people["other_district"],
            reason="dup",
        )
    # Lacking the permission: 403.
    with pytest.raises(PermissionDenied):
        workflow.apply(
            db, machine=TICKET, record=ticket, transition="reject", principal=people["officer"]
        )
    with pytest.raises(PermissionDenied):
        workflow.apply(
            db, machine=TICKET, record=ticket, transition="triage", principal=people["auditor"]
        )
    # Required reason missing or blank: 422.
    for reason in (None, "   "):
        with pytest.raises(InvalidInput) as info:
            workflow.apply(
                db,
                machine=TICKET,
                record=ticket,
                transition="reject",
                principal=people["supervisor"],
                reason=reason,
            )
        assert info.value.extra["missing"] == ["reason"]
    # Unknown transition: 422.
    with pytest.raises(InvalidInput):
        workflow.apply(
            db, machine=TICKET, record=ticket, transition="explode", principal=people["admin"]
        )
    assert counts(db, ticket.id) == before
    assert ticket.state == "new"

    # Guard: an on-hold ticket cannot be assigned.
    workflow.apply(
        db, machine=TICKET, record=ticket, transition="triage", principal=people["officer"]
    )
    ticket.on_hold = True
    with pytest.raises(IllegalTransition, match="on hold"):
        workflow.apply(
            db, machine=TICKET, record=ticket, transition="assign", principal=people["officer"]
        )
    assert ticket.state == "triaged"
    ticket.on_hold = False
    workflow.apply(
        db, machine=TICKET, record=ticket, transition="assign", principal=people["officer"]
    )
    assert ticket.state == "assigned"


def test_reason_goes_to_the_timeline_and_effect_runs(
    db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station, state="assigned")
    workflow.apply(
        db, machine=TICKET, record=ticket, transition="resolve", principal=people["officer"]
    )
    assert ticket.resolutions == 1
    workflow.apply(
        db,
        machine=TICKET,
        record=ticket,
        transition="reopen",
        principal=people["supervisor"],
        reason="citizen says it is not fixed",
    )
    db.commit()
    entries = timeline.list_for(db, record_type="wf_ticket", record_id=ticket.id)
    assert entries[-1].note == "citizen says it is not fixed"
    assert db.get(Ticket, ticket.id).resolutions == 1  # type: ignore[union-attr]


def test_public_flag_comes_from_transition_or_caller(
    db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station, state="resolved")
    workflow.apply(db, machine=TICKET, record=ticket, transition="close", principal=people["admin"])
    other = new_ticket(db, station)
    workflow.apply(
        db,
        machine=TICKET,
        record=other,
        transition="triage",
        principal=people["officer"],
        note="seen",
        public=True,
    )
    db.commit()
    assert [e.public for e in timeline.list_for(db, record_type="wf_ticket", record_id=ticket.id)]
    assert (
        timeline.list_for(db, record_type="wf_ticket", record_id=other.id, public_only=True)[0].note
        == "seen"
    )


def test_concurrent_change_is_a_conflict(
    runtime: Runtime, db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station)
    with runtime.sessions() as first, runtime.sessions() as second:
        a = first.get(Ticket, ticket.id)
        b = second.get(Ticket, ticket.id)
        assert a is not None
        assert b is not None
        workflow.apply(
            first, machine=TICKET, record=a, transition="triage", principal=people["officer"]
        )
        first.commit()
        # ``b`` still says "new": the compare-and-set update finds nothing to change.
        with pytest.raises(Conflict):
            workflow.apply(
                second,
                machine=TICKET,
                record=b,
                transition="reject",
                principal=people["supervisor"],
                reason="duplicate",
            )
        second.rollback()
    db.expire_all()
    assert db.get(Ticket, ticket.id).state == "triaged"  # type: ignore[union-attr]
    assert counts(db, ticket.id)[:2] == (1, 1)


def test_available_transitions_follow_state_permission_scope_and_guard(
    db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station)

    def names(who: str) -> list[str]:
        return [
            t.name
            for t in workflow.available_transitions(
                machine=TICKET, record=ticket, principal=people[who]
            )
        ]

    assert names("officer") == ["triage"]
    assert names("supervisor") == ["triage", "reject"]
    assert names("other_district") == []
    assert names("auditor") == []
    ticket.state = "triaged"
    ticket.on_hold = True
    assert names("officer") == []
    assert names("admin") == ["reject"]


def test_start_opens_the_timeline(db: Session, station: str, people: dict[str, Principal]) -> None:
    ticket = Ticket(org_id=station)
    entry = workflow.start(db, machine=TICKET, record=ticket, principal=people["officer"])
    assert ticket.state == "new"
    assert ticket.id is not None
    assert (entry.record_id, entry.kind, entry.to_state) == (ticket.id, "created", "new")
    with pytest.raises(IllegalTransition):
        workflow.start(
            db,
            machine=TICKET,
            record=Ticket(org_id=station, state="closed"),
            principal=people["officer"],
        )


def test_illegal_transition_is_problem_json_409(
    runtime: Runtime, db: Session, station: str, people: dict[str, Principal]
) -> None:
    ticket = new_ticket(db, station)
    api = FastAPI()
    install_problem_handlers(api)

    @api.post("/tickets/{ticket_id}/{name}", dependencies=[Depends(public)])
    def transition(ticket_id: str, name: str) -> dict[str, str]:
        with runtime.sessions.begin() as s:
            record = s.get(Ticket, ticket_id)
            result = workflow.apply(
                s, machine=TICKET, record=record, transition=name, principal=people["admin"]
            )
            return {"state": result.to_state}

    with TestClient(api, raise_server_exceptions=False) as client:
        bad = client.post(f"/tickets/{ticket.id}/close")
        assert bad.status_code == 409
        assert bad.headers["content-type"].startswith("application/problem+json")
        body = bad.json()
        assert body["type"].endswith("/illegal-transition")
        assert body["state"] == "new"
        ok = client.post(f"/tickets/{ticket.id}/triage")
        assert ok.status_code == 200
        assert ok.json() == {"state": "triaged"}
