"""Criminal review applications (复议 / 复核): filing from the console and the portal,
stages with statutory deadlines, the case moved on an overturn, victim notices once per
stage, the portal's redacted view, the overdue job, and bad input (past the window, a
second filing, illegal stage actions, wrong code, scripts in the grounds)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from safecity.alerts.models import Alert
from safecity.cases import reviews, reviews_jobs
from safecity.cases.models import Case
from safecity.cases.reviews_models import CaseReview
from safecity.cases.workflow import CASE
from safecity.platform.db import utcnow
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.platform.timeline import TimelineEntry
from safecity.security.audit import AuditEntry
from tests.cases.conftest import Opened, OpenFn, code_sent
from tests.conftest import City
from tests.publicguard import assert_no_canary

pytestmark = pytest.mark.db

SCRIPT = "<script>alert('x')</script> 不予立案错误"
REASON = "经审查 张三 证据不足"


def _reviews(runtime: Runtime) -> list[CaseReview]:
    with runtime.sessions.begin() as s:
        rows = list(s.scalars(select(CaseReview)))
        s.expunge_all()
        return rows


def _decide(client: TestClient, case: Opened, boss: Any, name: str) -> None:
    r = client.post(
        f"/api/cases/{case.id}/transitions/{name}",
        json={"reason": "no crime found"},
        headers=boss.headers,
    )
    assert r.status_code == 200, r.text


def _act(
    client: TestClient, review_id: str, name: str, headers: dict[str, str], **body: Any
) -> Any:
    return client.post(
        f"/api/case-reviews/{review_id}/transitions/{name}", json=body or None, headers=headers
    )


def _shift(monkeypatch: pytest.MonkeyPatch, days: float) -> None:
    later = utcnow() + timedelta(days=days)
    monkeypatch.setattr(reviews, "utcnow", lambda: later)


def test_officer_files_for_a_not_registered_case_and_an_overturn_registers_it(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0, register=False)
    _decide(client, case, make_actor("officer", city.stations[0]), "not_register")
    assert code_sent(runtime, case.id) is None  # never registered: no portal code yet
    r = client.post(f"/api/cases/{case.id}/reviews", json={"grounds": SCRIPT}, headers=case.headers)
    assert r.status_code == 201, r.text
    review = r.json()
    assert review["state"] == "filed"
    assert review["decision"] == "not_registered"
    assert review["grounds"] == SCRIPT.strip()  # stored as written; pages escape it
    assert review["due_at"] is not None
    code = code_sent(runtime, case.id)
    assert code is not None  # the victim can now follow the review in the portal

    boss = make_actor("supervisor", city.stations[0])
    # the officer may file but not decide
    assert _act(client, review["id"], "accept", case.headers).status_code == 403
    for name in ("accept", "start"):
        assert _act(client, review["id"], name, boss.headers).status_code == 200
    r = _act(client, review["id"], "overturn", boss.headers, reason=REASON)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "overturned"
    assert r.json()["due_at"] is None

    with runtime.sessions.begin() as s:
        state = s.get(Case, case.id).state  # type: ignore[union-attr]
        pending = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "cases.review.case_pending")
        )
        keys = set(
            s.scalars(
                select(Notification.idempotency_key).where(
                    Notification.idempotency_key.like(f"cases:review:{review['id']}:%")
                )
            )
        )
    assert reviews.REOPEN_TRANSITION in {t.name for t in CASE.transitions}
    assert state == "registered"  # the overturned refusal registers the case
    assert pending == 0
    assert keys == {
        f"cases:review:{review['id']}:{stage}"
        for stage in ("filed", "accepted", "reviewing", "overturned")
    }

    r = client.post("/api/portal/reviews/lookup", json={"number": case.number, "code": code})
    assert r.status_code == 200, r.text
    assert_no_canary(r, where="/api/portal/reviews/lookup")
    [public] = r.json()
    assert [s["stage"] for s in public["stages"]] == [
        "filed",
        "accepted",
        "reviewing",
        "overturned",
    ]
    assert "script" not in r.text
    assert "张三" not in r.text
    assert "no crime" not in r.text


def test_portal_filing_against_closing_then_reexamination(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    assert case.code is not None
    boss = make_actor("supervisor", city.stations[0])
    _decide(client, case, boss, "close")
    body = {"number": case.number, "code": case.code, "grounds": SCRIPT}
    r = client.post("/api/portal/reviews", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "filed"
    [row] = _reviews(runtime)
    assert row.channel == "portal"
    assert row.decision == "closed"
    assert row.grounds == SCRIPT

    # second filing against the same decision: 409, portal and console alike
    assert client.post("/api/portal/reviews", json=body).status_code == 409
    r = client.post(
        f"/api/cases/{case.id}/reviews", json={"grounds": "again"}, headers=boss.headers
    )
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert len(_reviews(runtime)) == 1

    # re-examination is only open after the 复议 outcome
    reexam = {"number": case.number, "code": case.code}
    assert client.post("/api/portal/reviews/reexam", json=reexam).status_code == 409
    for name in ("accept", "start"):
        assert _act(client, row.id, name, boss.headers).status_code == 200
    assert _act(client, row.id, "uphold", boss.headers, reason=REASON).status_code == 200
    r = client.post("/api/portal/reviews/reexam", json=reexam)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "reexam_filed"
    assert r.json()["due_at"] is not None

    # the 复核 went to the district (the station's parent): its supervisors list it
    district = make_actor("supervisor", city.districts[0])
    listed = client.get("/api/case-reviews", headers=district.headers)
    assert listed.status_code == 200
    assert [x["state"] for x in listed.json()] == ["reexam_filed"]
    assert client.get("/api/case-reviews", headers=boss.headers).json() == []
    assert client.get("/api/case-reviews", headers=case.headers).status_code == 403
    other = make_actor("supervisor", city.stations[1])
    assert client.get(f"/api/case-reviews/{row.id}", headers=other.headers).status_code == 404

    page = client.post("/portal", data={"number": case.number, "code": case.code})
    assert page.status_code == 200
    assert "<script>alert" not in page.text


def test_filing_past_the_window_is_refused_and_writes_nothing(
    client: TestClient,
    runtime: Runtime,
    open_case: OpenFn,
    make_actor: Any,
    city: City,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = open_case(0)
    assert case.code is not None
    _decide(client, case, make_actor("supervisor", city.stations[0]), "close")
    _shift(monkeypatch, 9)
    r = client.post(
        "/api/portal/reviews", json={"number": case.number, "code": case.code, "grounds": "late"}
    )
    assert r.status_code == 422, r.text
    assert "window closed" in r.json()["detail"]
    r = client.post(f"/api/cases/{case.id}/reviews", json={"grounds": "late"}, headers=case.headers)
    assert r.status_code == 422
    assert _reviews(runtime) == []


def test_reexamination_past_its_window_is_refused(
    client: TestClient,
    runtime: Runtime,
    open_case: OpenFn,
    make_actor: Any,
    city: City,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = open_case(0)
    boss = make_actor("supervisor", city.stations[0])
    _decide(client, case, boss, "close")
    r = client.post(f"/api/cases/{case.id}/reviews", json={"grounds": "x"}, headers=case.headers)
    rid = r.json()["id"]
    assert _act(client, rid, "reject", boss.headers, reason="out of time").status_code == 200
    _shift(monkeypatch, 9)
    r = _act(client, rid, "request_reexam", case.headers)
    assert r.status_code == 422, r.text
    assert _reviews(runtime)[0].state == "not_accepted"


def test_illegal_stage_actions_are_409_and_change_nothing(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    boss = make_actor("supervisor", city.stations[0])
    _decide(client, case, boss, "close")
    rid = client.post(
        f"/api/cases/{case.id}/reviews", json={"grounds": "x"}, headers=case.headers
    ).json()["id"]
    with runtime.sessions.begin() as s:
        before = s.scalar(select(func.count()).select_from(TimelineEntry))
    for name in ("uphold", "overturn", "start", "request_reexam", "reexam_accept"):
        r = _act(client, rid, name, boss.headers, reason="r")
        assert r.status_code == 409, (name, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    assert _act(client, rid, "reject", boss.headers).status_code == 422  # reason required
    assert _act(client, rid, "bogus", boss.headers).status_code == 422
    with runtime.sessions.begin() as s:
        assert s.scalar(select(func.count()).select_from(TimelineEntry)) == before
    assert _reviews(runtime)[0].state == "filed"
    # a case with no reviewable decision: nothing to file against
    live = open_case(0)
    r = client.post(f"/api/cases/{live.id}/reviews", json={"grounds": "x"}, headers=live.headers)
    assert r.status_code == 409


def test_wrong_code_answers_like_a_wrong_number_and_writes_nothing(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    assert case.code is not None
    _decide(client, case, make_actor("supervisor", city.stations[0]), "close")
    wrong_code = client.post(
        "/api/portal/reviews",
        json={"number": case.number, "code": "ZZZZZZZZ", "grounds": "x"},
        headers={"x-forwarded-for": "198.51.100.7"},
    )
    wrong_number = client.post(
        "/api/portal/reviews",
        json={"number": "C" + "9" * 12, "code": case.code, "grounds": "x"},
        headers={"x-forwarded-for": "198.51.100.8"},
    )
    assert wrong_code.status_code == wrong_number.status_code == 404
    assert wrong_code.content == wrong_number.content
    for path in ("/api/portal/reviews/lookup", "/api/portal/reviews/reexam"):
        r = client.post(path, json={"number": case.number, "code": "ZZZZZZZZ"})
        assert r.status_code == 404
        assert r.content == wrong_code.content
    assert _reviews(runtime) == []


def test_overdue_stage_raises_one_alert(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    _decide(client, case, make_actor("supervisor", city.stations[0]), "close")
    r = client.post(f"/api/cases/{case.id}/reviews", json={"grounds": "x"}, headers=case.headers)
    assert r.status_code == 201
    with runtime.sessions.begin() as s:
        assert reviews_jobs.check_overdue(s, now=utcnow() + timedelta(days=2)) == 0
        assert reviews_jobs.check_overdue(s, now=utcnow() + timedelta(days=7)) == 1
        assert reviews_jobs.check_overdue(s, now=utcnow() + timedelta(days=8)) == 0
        row = s.scalar(select(CaseReview))
        assert row is not None
        assert row.alerted_state == "filed"


def test_the_window_table_cites_its_rule() -> None:
    rule = reviews.RULES[("not_registered", "reconsideration")]
    assert (rule.file_days, rule.decide_days) == (7, 30)
    assert "179" in rule.basis
    assert set(reviews.DECISIONS) == {d for d, _ in reviews.RULES}


def _reexam_filed(
    client: TestClient, open_case: OpenFn, make_actor: Any, city: City, station: int = 0
) -> tuple[Opened, str, Any]:
    """A closed case whose 复议 the station upheld and whose officer asked for 复核."""
    case = open_case(station)
    boss = make_actor("supervisor", city.stations[station])
    _decide(client, case, boss, "close")
    r = client.post(f"/api/cases/{case.id}/reviews", json={"grounds": "x"}, headers=case.headers)
    rid = r.json()["id"]
    for name in ("accept", "start"):
        assert _act(client, rid, name, boss.headers).status_code == 200
    assert _act(client, rid, "uphold", boss.headers, reason=REASON).status_code == 200
    r = _act(client, rid, "request_reexam", case.headers)
    assert r.status_code == 200, r.text
    return case, rid, boss


def test_reexamination_goes_to_the_next_level_up(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case, rid, station_boss = _reexam_filed(client, open_case, make_actor, city)
    [row] = _reviews(runtime)
    assert row.state == "reexam_filed"
    assert row.org_id == city.districts[0].id  # 程序规定第179条: 上一级公安机关
    with runtime.sessions.begin() as s:
        route = s.scalar(select(AuditEntry).where(AuditEntry.action == "cases.review.route"))
        assert route is not None
        assert route.detail == {
            "from": city.stations[0].id,
            "to": city.districts[0].id,
            "level": "reexamination",
        }

    # the station decided the 复议 and may not decide the 复核: out of its scope now
    for actor in (station_boss, make_actor("officer", city.stations[0])):
        assert _act(client, rid, "reexam_accept", actor.headers).status_code in (403, 404)
        assert client.get(f"/api/case-reviews/{rid}", headers=actor.headers).status_code in (
            403,
            404,
        )
    # nor may another district's supervisor; the district's supervisor decides it
    other = make_actor("supervisor", city.districts[1])
    assert _act(client, rid, "reexam_accept", other.headers).status_code == 404
    district = make_actor("supervisor", city.districts[0])
    page = client.get("/console/case-reviews", headers=district.headers)
    assert page.status_code == 200
    assert rid in page.text
    assert _act(client, rid, "reexam_accept", district.headers).status_code == 200
    r = _act(client, rid, "reexam_uphold", district.headers, reason=REASON)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "reexam_upheld"

    # the station still follows it on the case, by the case's scope (no grounds)
    r = client.get(f"/api/cases/{case.id}/reviews", headers=case.headers)
    assert r.status_code == 200, r.text
    [status] = r.json()
    assert status["stage"] == "reexam_upheld"
    assert status["level"] == "reexamination"
    assert status["org_id"] == city.districts[0].id
    assert "grounds" not in status
    page = client.get(f"/console/cases/{case.id}", headers=case.headers)
    assert page.status_code == 200
    assert f'data-review-id="{rid}"' in page.text
    assert 'data-state="reexam_upheld"' in page.text
    assert f'href="/console/case-reviews/{rid}"' not in page.text  # decided above: no link
    outsider = make_actor("officer", city.stations[1])
    assert client.get(f"/api/cases/{case.id}/reviews", headers=outsider.headers).status_code == 404


def test_an_overdue_reexamination_alerts_the_district(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    _reexam_filed(client, open_case, make_actor, city)
    with runtime.sessions.begin() as s:
        assert reviews_jobs.check_overdue(s, now=utcnow() + timedelta(days=7)) == 1
        alert = s.scalar(select(Alert).where(Alert.category == "case_review_overdue"))
        assert alert is not None
        assert alert.org_id == city.districts[0].id


def test_reexamination_with_no_level_above_is_refused(
    client: TestClient, runtime: Runtime, make_actor: Any, city: City
) -> None:
    """A 复议 decided by the top org (the city): nothing above it in this system, so the
    复核 request is a 409 and the review stays where it was."""
    officer = make_actor("officer", city.city)
    boss = make_actor("supervisor", city.city)
    body = {"source": "report", "case_type": "theft", "org_id": city.city.id}
    r = client.post("/api/cases", json=body, headers=officer.headers)
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    for name in ("register", "investigate"):
        url = f"/api/cases/{case_id}/transitions/{name}"
        assert client.post(url, headers=officer.headers).status_code == 200
    url = f"/api/cases/{case_id}/transitions/close"
    assert client.post(url, json={"reason": "r"}, headers=boss.headers).status_code == 200
    r = client.post(f"/api/cases/{case_id}/reviews", json={"grounds": "x"}, headers=officer.headers)
    rid = r.json()["id"]
    assert _act(client, rid, "reject", boss.headers, reason="late").status_code == 200
    r = _act(client, rid, "request_reexam", officer.headers)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "no higher level" in r.json()["detail"]
    [row] = _reviews(runtime)
    assert row.state == "not_accepted"
    assert row.org_id == city.city.id
