"""The generic record timeline: add, list (in order, public only), erase."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from safecity.platform import timeline
from safecity.platform.errors import InvalidInput

pytestmark = pytest.mark.db

AT = datetime(2024, 5, 1, 9, tzinfo=UTC)


def test_entries_are_listed_in_insertion_order_per_record(session: Session) -> None:
    for i, kind in enumerate(("created", "transition", "note")):
        timeline.add(
            session,
            record_type="case",
            record_id="c1",
            kind=kind,
            actor_id="u1",
            note=f"n{i}",
            at=AT,  # same instant: insertion order decides
            public=kind != "note",
        )
    timeline.add(session, record_type="case", record_id="c2", kind="created")
    timeline.add(session, record_type="alert", record_id="c1", kind="created")
    session.commit()

    entries = timeline.list_for(session, record_type="case", record_id="c1")
    assert [e.kind for e in entries] == ["created", "transition", "note"]
    assert all(e.at == AT for e in entries)
    public = timeline.list_for(session, record_type="case", record_id="c1", public_only=True)
    assert [e.note for e in public] == ["n0", "n1"]
    assert len(timeline.list_for(session, record_type="case", record_id="c1", limit=2)) == 2


def test_read_schemas_hide_the_actor_from_the_public(session: Session) -> None:
    entry = timeline.add(
        session,
        record_type="case",
        record_id="c1",
        kind="transition",
        actor_id="officer-7",
        from_state="new",
        to_state="closed",
        note="fixed",
        public=True,
    )
    session.flush()
    staff = timeline.TimelineEntryRead.model_validate(entry).model_dump()
    assert staff["actor_id"] == "officer-7"
    citizen = timeline.PublicTimelineEntryRead.model_validate(entry).model_dump()
    assert set(citizen) == {"at", "kind", "from_state", "to_state", "note"}
    assert "officer-7" not in str(citizen)


def test_erase_for_removes_one_records_timeline(session: Session) -> None:
    for rid in ("a", "a", "b"):
        timeline.add(session, record_type="case", record_id=rid, kind="note", note="x")
    session.commit()
    assert timeline.erase_for(session, record_type="case", record_id="a") == 2
    session.commit()
    assert timeline.list_for(session, record_type="case", record_id="a") == []
    assert len(timeline.list_for(session, record_type="case", record_id="b")) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"record_type": "", "record_id": "1", "kind": "note"},
        {"record_type": "case", "record_id": "", "kind": "note"},
        {"record_type": "case", "record_id": "1", "kind": ""},
        {"record_type": "case", "record_id": "1", "kind": "note", "note": "x" * 4001},
        {"record_type": "case", "record_id": "1", "kind": "k" * 33},
        {"record_type": "c" * 65, "record_id": "1", "kind": "note"},
    ],
)
def test_bad_entries_are_rejected(session: Session, kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        timeline.add(session, **kwargs)  # type: ignore[arg-type]
    assert not session.new
