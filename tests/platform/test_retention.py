"""Retention: policies, the enforce job, audited erasure propagated by events.

A small record type ("rt_note", its own table outside ``Base.metadata``) is registered
by the tests, as a domain would register its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, String, Text, delete, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from safecity.platform import jobs, retention, timeline
from safecity.platform.db import UTCDateTime, new_id, transaction
from safecity.platform.errors import InvalidInput
from safecity.platform.events import get_event_type, validate
from safecity.platform.outbox import OutboxEvent
from safecity.platform.retention import RetentionRegistry
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
PERIOD = timedelta(days=30)
CANARY = "Zhang San 13800138000"  # personal data that must never reach audit or events


class NoteBase(DeclarativeBase):
    pass


class Note(NoteBase):
    __tablename__ = "rt_test_notes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(String(32))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)


# The owning "domain": create and erase.
def create_note(session: Session, *, org_id: str, closed_at: datetime | None) -> Note:
    note = Note(id=new_id(), org_id=org_id, closed_at=closed_at, body=CANARY)
    session.add(note)
    timeline.add(
        session, record_type="rt_note", record_id=note.id, kind="note", note=CANARY, org_id=org_id
    )
    return note


def erase_note(*, session: Session, record_id: str) -> None:
    session.execute(delete(Note).where(Note.id == record_id))


def make_registry(erase: retention.Erase = erase_note) -> RetentionRegistry:
    registry = RetentionRegistry()
    registry.register(
        record_type="rt_note",
        period=PERIOD,
        find_expired=retention.expired_by(Note.closed_at, id=Note.id, org=Note.org_id),
        erase=erase,
        owner="tests",
        description="closed notes: 30 days",
    )
    return registry


@pytest.fixture
def notes(runtime: Runtime) -> Engine:
    NoteBase.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        conn.execute(delete(Note))
    return runtime.engine


def seed(runtime: Runtime, *, expired: int, fresh: int, open_: int = 0) -> dict[str, list[str]]:
    ids: dict[str, list[str]] = {"expired": [], "fresh": [], "open": []}
    with transaction(runtime.sessions) as s:
        for i in range(expired):
            closed = NOW - PERIOD - timedelta(days=1 + i)
            ids["expired"].append(create_note(s, org_id=f"org{i % 2}", closed_at=closed).id)
        for i in range(fresh):
            closed = NOW - PERIOD + timedelta(hours=1 + i)
            ids["fresh"].append(create_note(s, org_id="org0", closed_at=closed).id)
        for _ in range(open_):
            ids["open"].append(create_note(s, org_id="org0", closed_at=None).id)
    return ids


def remaining(runtime: Runtime) -> set[str]:
    with runtime.sessions() as s:
        return set(s.scalars(select(Note.id)))


@pytest.mark.db
@pytest.mark.usefixtures("notes")
def test_enforce_erases_expired_records_only(runtime: Runtime) -> None:
    ids = seed(runtime, expired=3, fresh=2, open_=1)
    report = retention.enforce(sessions=runtime.sessions, now=NOW, registry=make_registry())

    assert report.erased == {"rt_note": 3}
    assert report.failed == []
    assert remaining(runtime) == set(ids["fresh"] + ids["open"])
    with runtime.sessions() as s:
        for erased in ids["expired"]:
            assert timeline.list_for(s, record_type="rt_note", record_id=erased) == []
        assert timeline.list_for(s, record_type="rt_note", record_id=ids["fresh"][0])

        audits = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "erase")))
        assert sorted(a.target_id or "" for a in audits) == sorted(ids["expired"])
        assert {(a.target_type, a.actor_id, a.purpose) for a in audits} == {
            ("rt_note", "system", "retention")
        }
        assert audits[0].detail["period_days"] == 30

        events = list(
            s.scalars(select(OutboxEvent).where(OutboxEvent.type == retention.RECORD_ERASED))
        )
        assert sorted(e.payload["record_id"] for e in events) == sorted(ids["expired"])
        for event in events:
            validate(event.type, event.payload)
            assert event.payload["reason"] == "retention"
            assert event.org_id in {"org0", "org1"}
        for row in [*audits, *events]:
            dumped = json.dumps(getattr(row, "detail", None) or getattr(row, "payload", None))
            assert "Zhang" not in dumped
            assert "13800138000" not in dumped

    # Nothing left to do: a second pass erases nothing.
    again = retention.enforce(sessions=runtime.sessions, now=NOW, registry=make_registry())
    assert again.total == 0


@pytest.mark.db
@pytest.mark.usefixtures("notes")
def test_one_failing_erasure_does_not_stop_the_others(runtime: Runtime) -> None:
    ids = seed(runtime, expired=4, fresh=0)
    bad = ids["expired"][1]

    def fragile(*, session: Session, record_id: str) -> None:
        erase_note(session=session, record_id=record_id)
        if record_id == bad:
            raise RuntimeError("legal hold")

    report = retention.enforce(
        sessions=runtime.sessions, now=NOW, registry=make_registry(fragile), batch_size=2
    )
    assert report.total == 3
    assert report.failed == [("rt_note", bad, "RuntimeError: legal hold")]
    assert remaining(runtime) == {bad}  # its erasure rolled back as a whole
    with runtime.sessions() as s:
        assert timeline.list_for(s, record_type="rt_note", record_id=bad)
        targets = set(s.scalars(select(AuditEntry.target_id).where(AuditEntry.action == "erase")))
        assert bad not in targets
        assert len(targets) == 3


@pytest.mark.db
@pytest.mark.usefixtures("notes")
def test_batches_and_per_type_limit(runtime: Runtime) -> None:
    seed(runtime, expired=5, fresh=1)
    limited = retention.enforce(
        sessions=runtime.sessions, now=NOW, registry=make_registry(), batch_size=2, max_per_type=3
    )
    assert limited.total == 3
    assert len(remaining(runtime)) == 3
    rest = retention.enforce(
        sessions=runtime.sessions, now=NOW, registry=make_registry(), batch_size=2
    )
    assert rest.total == 2
    assert len(remaining(runtime)) == 1


@pytest.mark.db
@pytest.mark.usefixtures("notes")
def test_an_erase_that_leaves_the_row_does_not_loop_forever(runtime: Runtime) -> None:
    seed(runtime, expired=3, fresh=0)

    def forgetful(*, session: Session, record_id: str) -> None:
        session.execute(select(Note.id))  # "erases" nothing

    report = retention.enforce(
        sessions=runtime.sessions, now=NOW, registry=make_registry(forgetful), batch_size=1
    )
    assert report.total == 3  # each looked at once in this run


@pytest.mark.db
@pytest.mark.usefixtures("notes")
def test_erasure_on_request_names_the_person_who_asked(runtime: Runtime) -> None:
    [note_id] = seed(runtime, expired=0, fresh=1)["fresh"]
    admin = Principal(
        id="admin-1",
        kind="user",
        username="admin",
        roles=frozenset({"admin"}),
        org_id="city",
        visible_org_ids=None,
    )
    with transaction(runtime.sessions) as s:
        retention.erase_record(
            s,
            policy=make_registry().get("rt_note"),
            record_id=note_id,
            org_id="org0",
            principal=admin,
            reason="request",
        )
    assert remaining(runtime) == set()
    with runtime.sessions() as s:
        row = s.scalars(select(AuditEntry).where(AuditEntry.action == "erase")).one()
        assert (row.actor_id, row.target_id, row.purpose) == ("admin-1", note_id, "request")
        event = s.scalars(
            select(OutboxEvent).where(OutboxEvent.type == retention.RECORD_ERASED)
        ).one()
        assert event.payload["reason"] == "request"


@pytest.fixture
def global_policy() -> Iterator[None]:
    retention.policies.register(
        record_type="rt_note",
        period=PERIOD,
        find_expired=retention.expired_by(Note.closed_at, id=Note.id, org=Note.org_id),
        erase=erase_note,
        owner="tests",
    )
    yield
    retention.policies.unregister("rt_note")


@pytest.mark.db
@pytest.mark.usefixtures("notes", "global_policy")
def test_the_registered_job_enforces_retention(runtime: Runtime) -> None:
    ids = seed(runtime, expired=2, fresh=1)
    outcome = jobs.Scheduler(runtime).run_now("retention.enforce", now=NOW)
    assert (outcome.status, outcome.items) == ("succeeded", 2)
    assert remaining(runtime) == set(ids["fresh"])


@pytest.mark.db
@pytest.mark.usefixtures("notes")
def test_a_failing_erasure_makes_the_job_partial(runtime: Runtime) -> None:
    seed(runtime, expired=2, fresh=0)

    def refuses(*, session: Session, record_id: str) -> None:
        raise RuntimeError("nope")

    retention.policies.register(
        record_type="rt_refusing",
        period=PERIOD,
        find_expired=retention.expired_by(Note.closed_at, id=Note.id),
        erase=refuses,
    )
    try:
        outcome = jobs.Scheduler(runtime).run_now("retention.enforce", now=NOW)
    finally:
        retention.policies.unregister("rt_refusing")
    assert outcome.status == "partial"
    assert outcome.items == 0
    assert outcome.error is not None
    assert outcome.error.count("RuntimeError: nope") == 2
    assert len(remaining(runtime)) == 2


@pytest.mark.db
def test_prune_job_deletes_old_job_runs(runtime: Runtime) -> None:
    registry = jobs.JobRegistry()
    registry.register("old", lambda ctx: 0, every="5m")
    jobs.Scheduler(runtime, registry).run_now("old")
    outcome = jobs.Scheduler(runtime).run_now(
        "platform.prune", now=jobs.utcnow() + timedelta(days=91)
    )
    assert outcome.status == "succeeded"
    assert outcome.items is not None
    assert outcome.items >= 1
    with runtime.sessions() as s:
        assert s.scalars(select(jobs.JobRun).where(jobs.JobRun.name == "old")).all() == []


def test_policy_registration_rules() -> None:
    registry = make_registry()
    assert [p.record_type for p in registry.all()] == ["rt_note"]
    with pytest.raises(ValueError, match="different retention policy"):
        registry.register(
            record_type="rt_note",
            period=timedelta(days=1),
            find_expired=retention.expired_by(Note.closed_at, id=Note.id),
            erase=erase_note,
        )
    with pytest.raises(ValueError, match="positive"):
        registry.register(
            record_type="other",
            period=timedelta(0),
            find_expired=retention.expired_by(Note.closed_at, id=Note.id),
            erase=erase_note,
        )
    with pytest.raises(InvalidInput):
        registry.get("missing")


def test_erased_event_type_is_registered_with_a_schema() -> None:
    event_type = get_event_type(retention.RECORD_ERASED)
    assert set(event_type.schema["required"]) == {"record_type", "record_id", "reason", "erased_at"}
    with pytest.raises(InvalidInput):
        validate(retention.RECORD_ERASED, {"record_type": "x", "record_id": "1"})
    with pytest.raises(InvalidInput):
        validate(
            retention.RECORD_ERASED,
            {
                "record_type": "x",
                "record_id": "1",
                "reason": "retention",
                "erased_at": NOW.isoformat(),
                "name": CANARY,
            },
        )
