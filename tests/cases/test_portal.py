"""The public portal: lookup by number + code (redacted timeline, canaries never shown),
uniform answers for every miss, lockout per (client, case), rate limit per client, every
attempt audited, comments stored as written and shown escaped after review, and stage
notifications sent once per (case, stage)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.cases import codes, notices
from safecity.cases.models import Case, CaseComment, LookupFailure
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.security import audit_writer
from safecity.security.audit import AuditEntry
from tests.cases.conftest import OpenFn
from tests.conftest import City
from tests.publicguard import CANARIES, assert_no_canary

pytestmark = pytest.mark.db

LOOKUP = "/api/portal/lookup"


def _lookup(client: TestClient, number: str, code: str) -> Any:
    r = client.post(LOOKUP, json={"number": number, "code": code})
    assert_no_canary(r, where=LOOKUP)
    return r


def test_lookup_shows_the_redacted_public_timeline(
    client: TestClient, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    assert case.code is not None
    note = {"text": f"suspect seen, call {CANARIES.phone}", "public": True}
    client.post(f"/api/cases/{case.id}/notes", json=note, headers=case.headers)
    internal = {"text": f"victim {CANARIES.name} lives at {CANARIES.flat}", "public": False}
    client.post(f"/api/cases/{case.id}/notes", json=internal, headers=case.headers)
    client.post(f"/api/cases/{case.id}/transitions/investigate", headers=case.headers)
    r = _lookup(client, case.number.lower(), case.code.lower())  # case-insensitive
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stage"] == "investigating"
    assert body["unit"] == city.stations[0].name_zh
    assert [e["stage"] for e in body["timeline"] if e["kind"] == "stage"] == [
        "received",
        "registered",
        "investigating",
    ]
    notes = [e["text"] for e in body["timeline"] if e["kind"] == "note"]
    assert notes == ["suspect seen, call ***"]
    page = client.post("/portal", data={"number": case.number, "code": case.code})
    assert page.status_code == 200
    assert_no_canary(page, where="/portal")
    assert city.stations[0].name_zh in page.text
    assert_no_canary(client.get("/portal"), where="GET /portal")
    en = client.post(
        LOOKUP, json={"number": case.number, "code": case.code}, headers={"Accept-Language": "en"}
    )
    assert en.json()["case_type"] == "Theft"


def test_every_miss_answers_exactly_the_same(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    hidden = open_case(0, case_type="domestic_violence")
    assert case.code is not None
    assert hidden.code is None
    # Even with a valid code on record (a supervisor-issued one), undisclosed stays hidden.
    with runtime.sessions.begin() as s:
        row = s.get(Case, hidden.id)
        assert row is not None
        row.code_mac = codes.code_mac(s, number=row.number, code="ABCDEFGH")
    other_number = "AJ" + ("2" if case.number[2] != "2" else "3") + case.number[3:]
    answers = [
        _lookup(client, other_number, case.code),  # wrong number
        _lookup(client, case.number, "ZZZZZZZZ" if case.code != "ZZZZZZZZ" else "YYYYYYYY"),
        _lookup(client, hidden.number, "ABCDEFGH"),  # undisclosed
        _lookup(client, "not a number!", case.code),  # malformed
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1
    assert len({r.headers["content-type"] for r in answers}) == 1
    pages = [
        client.post("/portal", data={"number": other_number, "code": case.code}),
        client.post("/portal", data={"number": hidden.number, "code": "ABCDEFGH"}),
    ]
    assert {p.status_code for p in pages} == {404}
    assert pages[0].text.replace(other_number, "") == pages[1].text.replace(hidden.number, "")
    for p in pages:
        assert_no_canary(p)
    with runtime.sessions.begin() as s:
        attempts = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "cases.portal.lookup")
        )
        assert attempts == 6  # every attempt audited


def test_lockout_is_per_client_and_case_not_per_case(app: FastAPI, open_case: OpenFn) -> None:
    case = open_case(0)
    assert case.code is not None
    wrong = "ZZZZZZZZ" if case.code != "ZZZZZZZZ" else "YYYYYYYY"
    with TestClient(app, client=("203.0.113.7", 4000)) as attacker:
        for _ in range(5):
            assert _lookup(attacker, case.number, wrong).status_code == 404
        locked = _lookup(attacker, case.number, case.code)
        assert locked.status_code == 404  # locked: the right code answers like a miss
    with TestClient(app, client=("198.51.100.9", 4000)) as victim:
        assert _lookup(victim, case.number, case.code).status_code == 200


def test_a_wrong_code_and_an_unknown_number_do_the_same_writes(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    assert case.code is not None
    unknown = "AJ" + ("2" if case.number[2] != "2" else "3") + case.number[3:]
    _lookup(client, case.number, "ZZZZZZZZ" if case.code != "ZZZZZZZZ" else "YYYYYYYY")
    _lookup(client, unknown, case.code)
    with runtime.sessions() as s:
        rows = s.scalars(select(LookupFailure)).all()
    # one failure row for each kind of miss: no write tells a real number from a made-up one
    assert sorted(r.failures for r in rows) == [1, 1]
    assert {r.case_id == case.id for r in rows} == {True, False}
    assert all(unknown not in r.case_id for r in rows)


def test_rate_limit_per_client(app: FastAPI) -> None:
    with (
        TestClient(app, client=("192.0.2.1", 1)) as one,
        TestClient(app, client=("192.0.2.2", 1)) as two,
    ):
        statuses = [_lookup(one, "AJ2222222222", "22222222").status_code for _ in range(11)]
        assert statuses[:10] == [404] * 10
        assert statuses[10] == 429
        assert _lookup(two, "AJ2222222222", "22222222").status_code == 404


def test_comment_is_stored_as_written_and_shown_escaped_after_review(
    client: TestClient, runtime: Runtime, open_case: OpenFn
) -> None:
    case = open_case(0)
    assert case.code is not None
    script = "<script>alert(1)</script> thanks"
    r = client.post(
        "/api/portal/comments", json={"number": case.number, "code": case.code, "text": script}
    )
    assert r.status_code == 202, r.text
    assert_no_canary(r)
    wrong = client.post(
        "/api/portal/comments", json={"number": case.number, "code": "22222222", "text": "x"}
    )
    assert wrong.status_code == 404
    assert wrong.content == _lookup(client, "AJ2222222222", "22222222").content
    page = client.post("/portal", data={"number": case.number, "code": case.code})
    assert "<script>alert(1)" not in page.text
    assert "thanks" not in page.text  # not public before review
    with runtime.sessions.begin() as s:
        item = s.scalars(select(CaseComment).where(CaseComment.case_id == case.id)).one()
        assert item.text == script
        assert item.public_text is None
        comment_id = item.id
    review = {"public_text": f"{script} {CANARIES.phone}"}
    url = f"/api/cases/{case.id}/comments/{comment_id}/review"
    assert client.post(url, json=review, headers=case.headers).status_code == 200
    reply = {"text": "we are on it", "reply_to": comment_id}
    r = client.post(f"/api/cases/{case.id}/replies", json=reply, headers=case.headers)
    assert r.status_code == 201
    page = client.post("/portal", data={"number": case.number, "code": case.code})
    assert "&lt;script&gt;alert(1)&lt;/script&gt; thanks" in page.text
    assert "<script>alert(1)" not in page.text
    assert "we are on it" in page.text
    assert_no_canary(page)
    body = _lookup(client, case.number, case.code).json()
    kinds = [e["kind"] for e in body["timeline"]]
    assert "comment" in kinds
    assert "reply" in kinds
    # Console detail shows the comment escaped too.
    console = client.get(f"/console/cases/{case.id}", headers=case.headers)
    assert console.status_code == 200
    assert "&lt;script&gt;" in console.text
    assert "<script>alert(1)" not in console.text


def test_stage_notifications_are_sent_once_per_case_and_stage(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    boss = make_actor("supervisor", city.stations[0])
    for name, body in (
        ("investigate", None),
        ("suspend", {"reason": "no leads"}),
        ("resume", None),  # investigating again: no second message
    ):
        r = client.post(f"/api/cases/{case.id}/transitions/{name}", json=body, headers=boss.headers)
        assert r.status_code == 200, r.text
    with runtime.sessions.begin() as s:
        row = s.get(Case, case.id)
        assert row is not None
        first = notices.stage_changed(s, case=row)  # a replay
        again = notices.stage_changed(s, case=row)
        assert first is not None
        assert again is not None
        assert first.id == again.id
        keys = s.scalars(
            select(Notification.idempotency_key).where(
                Notification.idempotency_key.like(f"cases:{case.id}:%")
            )
        ).all()
        bodies = s.scalars(
            select(Notification.body).where(Notification.template == "cases.stage_changed")
        ).all()
    assert sorted(keys) == sorted(
        f"cases:{case.id}:{k}"
        for k in ("code", "stage:registered", "stage:investigating", "stage:suspended")
    )
    for text in bodies:
        assert case.code is not None
        assert case.code not in text
        assert_no_canary(text)


def test_supervisor_override_and_victim_opt_out_are_audited(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    from tests.cases.conftest import code_sent

    hidden = open_case(0, case_type="domestic_violence")
    assert hidden.code is None
    url = f"/api/cases/{hidden.id}/disclosure"
    body = {"override": True, "reason": "victim asked to follow the case"}
    assert client.post(url, json=body, headers=hidden.headers).status_code == 403  # officer
    boss = make_actor("supervisor", city.stations[0])
    r = client.post(url, json=body, headers=boss.headers)
    assert r.status_code == 200, r.text
    assert r.json()["disclosed"] is True
    code = code_sent(runtime, hidden.id)
    assert code is not None
    assert _lookup(client, hidden.number, code).status_code == 200
    opt_out = {"victim_opt_out": True, "override": True, "reason": "victim withdrew consent"}
    assert client.post(url, json=opt_out, headers=boss.headers).json()["disclosed"] is False
    assert _lookup(client, hidden.number, code).status_code == 404
    with runtime.sessions.begin() as s:
        n = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "cases.disclosure", AuditEntry.target_id == hidden.id)
        )
        assert n == 2


def test_oversized_or_missing_fields_are_422(client: TestClient) -> None:
    too_long = client.post(LOOKUP, json={"number": "A" * 41, "code": "22222222"})
    assert too_long.status_code == 422
    assert client.post(LOOKUP, json={"number": "AJ2222222222"}).status_code == 422
    huge = {"number": "AJ2222222222", "code": "22222222", "text": "x" * 2001}
    assert client.post("/api/portal/comments", json=huge).status_code == 422
    for r in (too_long,):
        assert_no_canary(r)


def test_portal_lookup_answers_503_when_its_record_cannot_be_written(
    client: TestClient, open_case: OpenFn, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = open_case(0)
    assert case.code is not None

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise audit_writer.AuditUnavailable("the audit log could not be written")

    monkeypatch.setattr(audit_writer, "write", refuse)
    r = client.post("/api/portal/lookup", json={"number": case.number, "code": case.code})
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert case.number not in r.text
    monkeypatch.undo()
    ok = client.post("/api/portal/lookup", json={"number": case.number, "code": case.code})
    assert ok.status_code == 200
    assert _lookups(runtime) == 1


def _lookups(runtime: Runtime) -> int:
    with runtime.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "cases.portal.lookup")
            )
            or 0
        )
