"""The review queue: scoped to pairs whose two records the reviewer sees, link and reject
decisions (once), manual merges and unmerges, the API's permissions and the console."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.linkage import review
from safecity.linkage.models import LinkChange, LinkPair, LinkPerson, LinkRecord
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from safecity.platform.runtime import Runtime
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in, make_staff  # noqa: F401
from tests.linkage.linkrows import audit_actions, model, pair, principal, record

pytestmark = pytest.mark.db


def _pairs(runtime: Runtime, city: City) -> dict[str, Any]:
    """Three pending pairs: inside district 0 (two probabilities) and one crossing into
    district 1, plus one already rejected."""
    s0, s1, s2 = city.stations[0].id, city.stations[1].id, city.stations[2].id
    with runtime.sessions.begin() as s:
        m = model(s)
        a, b = record(s, s0, dob="1990-01-02"), record(s, s1, dob="1990-02-01")
        c, d = record(s, s0), record(s, s1)
        e = record(s, s2)
        high = pair(s, a, b, 0.91, m.id)
        low = pair(s, c, d, 0.62, m.id)
        crossing = pair(s, a, e, 0.88, m.id)
        done = pair(s, c, e, 0.7, m.id)
        done.state = "rejected"
        return {
            "high": high.id,
            "low": low.id,
            "crossing": crossing.id,
            "rejected": done.id,
            "people": {k: r.person_id for k, r in zip("abcde", (a, b, c, d, e), strict=True)},
            "records": {k: r.id for k, r in zip("abcde", (a, b, c, d, e), strict=True)},
        }


def _survivor(ids: dict[str, Any], x: str, y: str) -> tuple[str, str]:
    """(surviving, absorbed) person when the pair of records x and y is linked: the person
    of the pair's ``record_a`` (the smaller record id) survives."""
    first, second = sorted((x, y), key=lambda k: ids["records"][k])
    return ids["people"][first], ids["people"][second]


def _reviewer(city: City) -> Any:
    district = city.districts[0]
    return principal("supervisor", district.id, frozenset({s.id for s in city.stations[:2]}))


def test_the_queue_shows_only_pairs_with_both_records_in_scope(
    runtime: Runtime, city: City
) -> None:
    ids = _pairs(runtime, city)
    with runtime.sessions.begin() as s:
        page = review.queue(session=s, principal=_reviewer(city), params=review.QUEUE.parse())
        assert [p.id for p in page.items] == [ids["high"], ids["low"]]  # highest first
        assert page.items[0].record_a.fields["surname"] == "王"
        assert page.items[0].contributions == {"surname": 3.2, "dob": -1.5}
        oldest = review.QUEUE.parse(sort="created_at")
        assert review.queue(session=s, principal=_reviewer(city), params=oldest).total == 2
        city_wide = principal("admin", city.city.id, None)
        everything = review.queue(session=s, principal=city_wide, params=review.QUEUE.parse())
        assert {p.id for p in everything.items} == {ids["high"], ids["low"], ids["crossing"]}
        officer = principal("officer", city.stations[0].id, frozenset({city.stations[0].id}))
        with pytest.raises(PermissionDenied):
            review.queue(session=s, principal=officer, params=review.QUEUE.parse())
        with pytest.raises(NotFound):  # a record of the pair is outside the scope
            review.decide(
                session=s,
                principal=_reviewer(city),
                pair_id=ids["crossing"],
                decision="link",
                reason="x",
            )
    with runtime.sessions() as s:
        assert ("linkage.review.list", review.PURPOSE) in audit_actions(s)


def test_link_merges_the_persons_and_a_second_decision_is_a_conflict(
    runtime: Runtime, city: City
) -> None:
    ids = _pairs(runtime, city)
    boss = _reviewer(city)
    with runtime.sessions.begin() as s:
        with pytest.raises(InvalidInput):
            review.decide(
                session=s, principal=boss, pair_id=ids["high"], decision="link", reason=""
            )
        result = review.decide(
            session=s, principal=boss, pair_id=ids["high"], decision="link", reason="same ID"
        )
        assert result.state == "linked"
        assert result.change is not None
        assert result.change.kind == "link"
        for decision in ("link", "reject"):
            with pytest.raises(Conflict):
                review.decide(
                    session=s, principal=boss, pair_id=ids["high"], decision=decision, reason="x"
                )
    with runtime.sessions() as s:
        moved = s.get(LinkRecord, ids["records"]["b"])
        assert moved is not None
        kept, gone = _survivor(ids, "a", "b")
        assert moved.person_id == kept
        absorbed = s.get(LinkPerson, gone)
        assert absorbed is not None
        assert absorbed.merged_into == kept
        linked = s.get(LinkPair, ids["high"])
        assert linked is not None
        assert (linked.state, linked.decided_by, linked.reason) == ("linked", boss.id, "same ID")
        actions = [a for a, _ in audit_actions(s)]
        assert actions[-2:] == ["linkage.merge", "linkage.review.link"]


def test_reject_keeps_the_persons_apart_and_writes_a_change(runtime: Runtime, city: City) -> None:
    ids = _pairs(runtime, city)
    with runtime.sessions.begin() as s:
        result = review.decide(
            session=s,
            principal=_reviewer(city),
            pair_id=ids["low"],
            decision="reject",
            reason="different dates of birth",
        )
        assert result.state == "rejected"
        with pytest.raises(InvalidInput):
            review.decide(
                session=s,
                principal=_reviewer(city),
                pair_id=ids["high"],
                decision="maybe",
                reason="x",
            )
    with runtime.sessions() as s:
        people = ids["people"]
        assert {r.person_id for r in s.scalars(select(LinkRecord))} == set(people.values())
        change = s.scalar(select(LinkChange).where(LinkChange.pair_id == ids["low"]))
        assert change is not None
        assert change.kind == "reject"
        assert {change.person_id, change.other_person_id} == {people["c"], people["d"]}


def test_manual_merge_needs_every_record_in_scope_and_can_be_undone(
    runtime: Runtime, city: City
) -> None:
    ids = _pairs(runtime, city)
    people = ids["people"]
    boss = _reviewer(city)
    with runtime.sessions.begin() as s:
        with pytest.raises(NotFound):  # person e lives in district 1 only
            review.merge_persons(
                session=s,
                principal=boss,
                survivor_id=people["a"],
                absorbed_id=people["e"],
                reason="x",
            )
        with pytest.raises(InvalidInput):
            review.merge_persons(
                session=s,
                principal=boss,
                survivor_id=people["a"],
                absorbed_id=people["c"],
                reason=" ",
            )
        change = review.merge_persons(
            session=s,
            principal=boss,
            survivor_id=people["a"],
            absorbed_id=people["c"],
            reason="known alias",
        )
        assert change.kind == "merge"
        undo = review.unmerge(session=s, principal=boss, change_id=change.id, reason="mistake")
        assert undo.undoes == change.id
        history = review.person_history(session=s, principal=boss, person_id=people["c"])
        assert [h.kind for h in history] == ["merge", "unmerge"]


# --------------------------------------------------------------------------- the API


def test_the_api_reads_decides_and_checks_permissions(
    client: TestClient, runtime: Runtime, city: City, make_actor: Any
) -> None:
    ids = _pairs(runtime, city)
    people = ids["people"]
    officer = make_actor("officer", city.stations[0])
    boss = make_actor("supervisor", city.districts[0])
    queue = client.get("/api/linkage/review", headers=boss.headers)
    assert queue.status_code == 200, queue.text
    assert [p["id"] for p in queue.json()["items"]] == [ids["high"], ids["low"]]
    assert client.get("/api/linkage/review", headers=officer.headers).status_code == 403
    body = {"decision": "link", "reason": "same person"}
    refused = client.post(f"/api/linkage/review/{ids['high']}", json=body, headers=officer.headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    empty = client.post(
        f"/api/linkage/review/{ids['high']}",
        json={"decision": "link", "reason": ""},
        headers=boss.headers,
    )
    assert empty.status_code == 422
    done = client.post(f"/api/linkage/review/{ids['high']}", json=body, headers=boss.headers)
    assert done.status_code == 200, done.text
    change_id = done.json()["change"]["id"]
    again = client.post(f"/api/linkage/review/{ids['high']}", json=body, headers=boss.headers)
    assert again.status_code == 409
    # the officer reads the merged person with a purpose; b's record (station 1) is hidden
    person = client.get(
        f"/api/linkage/persons/{people['b']}",
        params={"purpose": "suspect check"},
        headers=officer.headers,
    )
    assert person.status_code == 200, person.text
    view = person.json()
    assert view["id"] == _survivor(ids, "a", "b")[0]
    assert [r["id"] for r in view["records"]] == [ids["records"]["a"]]
    assert view["hidden_records"] == 1
    history = client.get(f"/api/linkage/persons/{people['a']}/history", headers=officer.headers)
    assert [h["kind"] for h in history.json()] == ["link"]
    assert (
        client.get(f"/api/linkage/persons/{people['e']}", headers=officer.headers).status_code
        == 404
    )
    merge = client.post(
        f"/api/linkage/persons/{people['a']}/merge",
        json={"other": people["c"], "reason": "alias"},
        headers=officer.headers,
    )
    assert merge.status_code == 403
    merge = client.post(
        f"/api/linkage/persons/{people['a']}/merge",
        json={"other": people["a"], "reason": "alias"},
        headers=boss.headers,
    )
    assert merge.status_code == 409
    undo = client.post(
        f"/api/linkage/changes/{change_id}/unmerge", json={"reason": ""}, headers=boss.headers
    )
    assert undo.status_code == 422
    undo = client.post(
        f"/api/linkage/changes/{change_id}/unmerge",
        json={"reason": "twins"},
        headers=boss.headers,
    )
    assert undo.status_code == 200, undo.text
    with runtime.sessions() as s:
        back = s.get(LinkPair, ids["high"])
        assert back is not None
        assert back.state == "rejected"
        assert ("linkage.person.read", "suspect check") in audit_actions(s)


# --------------------------------------------------------------------------- console


@pytest.mark.parametrize(("lang", "title"), [("zh", "人员索引复核"), ("en", "Person index review")])
def test_the_console_queue_renders_and_its_forms_decide(
    client: TestClient,
    runtime: Runtime,
    city: City,
    make_staff: Any,  # noqa: F811
    lang: str,
    title: str,
) -> None:
    ids = _pairs(runtime, city)
    client.cookies.set("safecity_lang", lang)
    log_in(client, make_staff("supervisor", city.districts[0]))
    page = client.get("/console/linkage/review")
    assert page.status_code == 200
    html = page.text
    assert title in html
    assert f'data-pair-id="{ids["high"]}"' in html
    assert f'data-pair-id="{ids["crossing"]}"' not in html
    assert 'data-field="dob" data-differs' in html  # the dates differ: highlighted
    assert 'data-field="surname" data-differs' not in html
    assert 'data-comparison="surname"' in html
    token = csrf_from(html)
    no_reason = client.post(
        f"/console/linkage/review/{ids['high']}",
        data={"csrf_token": token, "decision": "link", "reason": ""},
    )
    assert no_reason.status_code == 422
    assert 'data-error="422"' in no_reason.text
    forged = client.post(
        f"/console/linkage/review/{ids['high']}", data={"decision": "link", "reason": "x"}
    )
    assert forged.status_code == 403
    linked = client.post(
        f"/console/linkage/review/{ids['high']}",
        data={"csrf_token": token, "decision": "link", "reason": "same ID"},
        follow_redirects=False,
    )
    assert linked.status_code == 303
    person = client.get(f"/console/linkage/persons/{ids['people']['a']}")
    assert person.status_code == 200
    assert f'data-record-id="{ids["records"]["b"]}"' in person.text
    with runtime.sessions() as s:
        change = s.scalar(select(LinkChange).where(LinkChange.pair_id == ids["high"]))
        assert change is not None
    assert 'data-form="unmerge"' in person.text
    undone = client.post(
        f"/console/linkage/persons/{ids['people']['a']}/unmerge/{change.id}",
        data={"csrf_token": token, "reason": "twins"},
        follow_redirects=False,
    )
    assert undone.status_code == 303
    after = client.get(f"/console/linkage/persons/{ids['people']['a']}")
    assert f'data-record-id="{ids["records"]["b"]}"' not in after.text
    assert "data-undone" in after.text


def test_an_officer_reads_a_person_but_not_the_queue(
    client: TestClient,
    runtime: Runtime,
    city: City,
    make_staff: Any,  # noqa: F811
) -> None:
    ids = _pairs(runtime, city)
    log_in(client, make_staff("officer", city.stations[0]))
    assert client.get("/console/linkage/review").status_code == 403
    page = client.get(f"/console/linkage/persons/{ids['people']['a']}")
    assert page.status_code == 200
    assert 'data-form="unmerge"' not in page.text
