"""Master persons: merge moves records and writes history, chains resolve, unmerge
restores exactly what a merge moved, and reads are scoped and audited."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from safecity.linkage import persons
from safecity.linkage.models import LinkChange, LinkPair, LinkPerson, LinkRecord
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.runtime import Runtime
from safecity.security import audit
from tests.conftest import City
from tests.linkage.linkrows import audit_actions, model, pair, principal, record

pytestmark = pytest.mark.db

SYSTEM = audit.SYSTEM


def test_merge_moves_every_record_and_writes_the_history(runtime: Runtime, city: City) -> None:
    org = city.stations[0].id
    with runtime.sessions.begin() as s:
        a = record(s, org)
        b1 = record(s, org)
        b2 = record(s, org, person_id=b1.person_id)
        survivor, absorbed = a.person_id, b1.person_id
        change = persons.merge(
            s,
            principal=SYSTEM,
            survivor_id=survivor,
            absorbed_id=absorbed,
            kind="merge",
            reason="same ID number",
        )
        assert change.kind == "merge"
        assert change.person_id == survivor
        assert change.other_person_id == absorbed
        assert sorted(change.records) == sorted([b1.id, b2.id])
        assert [e.action for e in audit.pending_records(s)] == ["linkage.merge"]
    with runtime.sessions() as s:
        on_survivor = s.scalars(select(LinkRecord.id).where(LinkRecord.person_id == survivor))
        assert sorted(on_survivor) == sorted([a.id, b1.id, b2.id])
        gone = s.get(LinkPerson, absorbed)
        assert gone is not None
        assert gone.merged_into == survivor
        assert [c.id for c in persons.history(s, survivor)] == [change.id]
        assert audit_actions(s) == [("linkage.merge", None)]


def test_merge_into_itself_or_a_merged_person_is_a_conflict(runtime: Runtime, city: City) -> None:
    org = city.stations[0].id
    with runtime.sessions.begin() as s:
        a, b, c = (record(s, org) for _ in range(3))
        pb, pc = b.person_id, c.person_id  # b.person_id follows b's record once merged
        with pytest.raises(Conflict):
            persons.merge(
                s,
                principal=SYSTEM,
                survivor_id=a.person_id,
                absorbed_id=a.person_id,
                kind="merge",
                reason="x",
            )
        persons.merge(
            s,
            principal=SYSTEM,
            survivor_id=a.person_id,
            absorbed_id=b.person_id,
            kind="auto_link",
            reason="score 0.99",
        )
        for survivor, absorbed in ((pb, pc), (pc, pb)):
            with pytest.raises(Conflict) as caught:
                persons.merge(
                    s,
                    principal=SYSTEM,
                    survivor_id=survivor,
                    absorbed_id=absorbed,
                    kind="merge",
                    reason="x",
                )
            assert caught.value.extra["survivor"] == a.person_id  # names the one to use
        with pytest.raises(InvalidInput):
            persons.merge(
                s,
                principal=SYSTEM,
                survivor_id=a.person_id,
                absorbed_id=c.person_id,
                kind="merge",
                reason="  ",
            )
        with pytest.raises(InvalidInput):
            persons.merge(
                s,
                principal=SYSTEM,
                survivor_id=a.person_id,
                absorbed_id=c.person_id,
                kind="unmerge",
                reason="x",
            )
        with pytest.raises(NotFound):
            persons.merge(
                s,
                principal=SYSTEM,
                survivor_id=a.person_id,
                absorbed_id="nobody",
                kind="merge",
                reason="x",
            )


def test_resolve_follows_a_chain_of_merges(runtime: Runtime, city: City) -> None:
    org = city.stations[0].id
    with runtime.sessions.begin() as s:
        pa, pb, pc = (record(s, org).person_id for _ in range(3))
        persons.merge(
            s, principal=SYSTEM, survivor_id=pb, absorbed_id=pa, kind="merge", reason="one"
        )
        persons.merge(
            s, principal=SYSTEM, survivor_id=pc, absorbed_id=pb, kind="merge", reason="two"
        )
        assert s.get(LinkPerson, pa).merged_into == pb  # type: ignore[union-attr]
        assert persons.resolve(s, pa).id == pc
        assert persons.resolve(s, pb).id == pc
        assert persons.resolve(s, pc).id == pc
        with pytest.raises(NotFound):
            persons.resolve(s, "missing")
        assert set(s.scalars(select(LinkRecord.person_id))) == {pc}


def test_unmerge_restores_exactly_the_moved_records(runtime: Runtime, city: City) -> None:
    org = city.stations[0].id
    with runtime.sessions.begin() as s:
        m = model(s)
        a = record(s, org)
        b = record(s, org)
        b2 = record(s, org, person_id=b.person_id)
        linked = pair(s, a, b, 0.97, m.id)
        survivor, absorbed = a.person_id, b.person_id
        merged = persons.merge(
            s,
            principal=SYSTEM,
            survivor_id=survivor,
            absorbed_id=absorbed,
            kind="auto_link",
            reason="score 0.97",
            pair_id=linked.id,
        )
        assert s.get(LinkPair, linked.id).state == "linked"  # type: ignore[union-attr]
        later = record(s, org, person_id=survivor)  # joined the survivor after the merge
        undo = persons.unmerge(s, principal=SYSTEM, change_id=merged.id, reason="twins")
        assert undo.kind == "unmerge"
        assert undo.undoes == merged.id
        assert undo.person_id == absorbed
        assert sorted(undo.records) == sorted([b.id, b2.id])
        with pytest.raises(Conflict):
            persons.unmerge(s, principal=SYSTEM, change_id=merged.id, reason="again")
        with pytest.raises(Conflict):
            persons.unmerge(s, principal=SYSTEM, change_id=undo.id, reason="not a merge")
        with pytest.raises(InvalidInput):
            persons.unmerge(s, principal=SYSTEM, change_id=merged.id, reason="")
    with runtime.sessions() as s:
        on = {r.id: r.person_id for r in s.scalars(select(LinkRecord))}
        assert on == {a.id: survivor, later.id: survivor, b.id: absorbed, b2.id: absorbed}
        person = s.get(LinkPerson, absorbed)
        assert person is not None
        assert person.merged_into is None
        back = s.get(LinkPair, linked.id)
        assert back is not None
        assert back.state == "rejected"
        assert back.reason == "twins"
        kinds = [c.kind for c in persons.history(s, absorbed)]
        assert kinds == ["auto_link", "unmerge"]
        assert persons.history(s, survivor)[0].undone_by == undo.id
        assert [a for a, _ in audit_actions(s)] == ["linkage.merge", "linkage.unmerge"]


def test_a_later_merge_of_the_survivor_must_be_undone_first(runtime: Runtime, city: City) -> None:
    org = city.stations[0].id
    with runtime.sessions.begin() as s:
        a, b, c = (record(s, org) for _ in range(3))
        first = persons.merge(
            s,
            principal=SYSTEM,
            survivor_id=a.person_id,
            absorbed_id=b.person_id,
            kind="merge",
            reason="one",
        )
        second = persons.merge(
            s,
            principal=SYSTEM,
            survivor_id=c.person_id,
            absorbed_id=a.person_id,
            kind="merge",
            reason="two",
        )
        with pytest.raises(Conflict):
            persons.unmerge(s, principal=SYSTEM, change_id=first.id, reason="x")
        persons.unmerge(s, principal=SYSTEM, change_id=second.id, reason="x")
        persons.unmerge(s, principal=SYSTEM, change_id=first.id, reason="x")
        assert {r.person_id for r in s.scalars(select(LinkRecord))} == {
            a.person_id,
            b.person_id,
            c.person_id,
        }
        assert s.scalar(select(LinkChange).where(LinkChange.undoes == first.id)) is not None


def test_person_view_shows_records_in_scope_and_counts_the_others(
    runtime: Runtime, city: City
) -> None:
    mine, theirs = city.stations[0].id, city.stations[2].id
    with runtime.sessions.begin() as s:
        a = record(s, mine, dob="1990-01-02")
        b = record(s, theirs)
        pb = b.person_id
        other = record(s, theirs)
        persons.merge(
            s,
            principal=SYSTEM,
            survivor_id=a.person_id,
            absorbed_id=b.person_id,
            kind="merge",
            reason="same",
        )
    officer = principal("officer", mine, frozenset({mine}))
    with runtime.sessions.begin() as s:
        view = persons.person_view(
            s, principal=officer, person_id=pb, purpose="case 42 suspect check"
        )
        assert view.id == a.person_id
        assert view.requested_id == pb
        assert [r.id for r in view.records] == [a.id]
        assert view.records[0].fields["dob"] == "1990-01-02"
        assert view.hidden_records == 1
        assert view.sources == {"cases.person": 1}
        assert [c.kind for c in view.history] == ["merge"]
        with pytest.raises(NotFound):  # sees none of its records: does not exist for them
            persons.person_view(s, principal=officer, person_id=other.person_id, purpose="x")
        with pytest.raises(InvalidInput):
            persons.person_view(s, principal=officer, person_id=a.person_id, purpose=" ")
    with runtime.sessions() as s:
        assert audit_actions(s)[-1] == ("linkage.person.read", "case 42 suspect check")
