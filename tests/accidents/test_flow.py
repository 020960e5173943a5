"""The phone flow end to end: two drivers settle a rear-end collision, the demo insurer
acknowledges; and the bad inputs of issue 11 (third driver, reused code, bad photos,
disagreement)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.accidents.models import AccidentCase, InsurerNotice
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.accidents.flow import fill, join, jpeg, open_case, rear_end, sign, upload_all
from tests.conftest import City

pytestmark = pytest.mark.db


def _case(runtime: Runtime, ref: str) -> AccidentCase:
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).one()
        s.expunge(case)
        return case


def test_two_drivers_settle_a_rear_end_and_the_insurers_acknowledge(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    a, b, code = rear_end(client)
    case = _case(runtime, a.ref)
    assert case.org_id == areas.stations[0].id
    assert case.state == "evidence_complete"
    assert case.liability is not None
    assert (case.liability["share_a"], case.liability["share_b"]) == (0, 100)
    fired = case.liability["fired"]
    assert "rear_end" in [f["rule_id"] for f in fired]
    assert {f["party"] for f in fired} == {"B"}
    page = client.get(b.page)
    assert 'data-rule="rear_end"' in page.text
    assert "data-verdict" in page.text
    assert case.t1_road_cleared_at is not None

    sign(runtime, a)
    assert _case(runtime, a.ref).state == "evidence_complete"  # one signature is not enough
    sign(runtime, b)  # seals; the notices go out right after the response
    case = _case(runtime, a.ref)
    assert case.state == "notified"
    assert case.t2_signed_at is not None
    assert case.t3_insurer_ack_at is not None
    assert case.t0_started_at <= case.t1_road_cleared_at <= case.t2_signed_at  # type: ignore[operator]
    with runtime.sessions() as s:
        notices = s.scalars(select(InsurerNotice).order_by(InsurerNotice.party_role)).all()
    assert [(n.insurer_code, n.status, n.acks) for n in notices] == [
        ("demo_pingan", "acked", 1),
        ("demo_cpic", "acked", 1),
    ]
    claim_ids = [n.external_claim_id for n in notices]
    assert all(c and c.startswith("DEMO-") for c in claim_ids)

    sealed = client.get(a.page + "/sealed.json")
    assert sealed.status_code == 200
    doc = sealed.json()
    body = json.dumps(doc["document"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    key = Ed25519PublicKey.from_public_bytes(__import__("base64").b64decode(doc["public_key"]))
    key.verify(bytes.fromhex(doc["signature"]), body.encode())  # raises if forged
    assert len(doc["document"]["summary"]["evidence"]) == 5
    assert [s["role"] for s in doc["document"]["signatures"]] == ["A", "B"]

    for n in notices:  # the demo insurer reports assessment, then payment
        for event in ("assessed", "paid"):
            r = client.post(f"/demo-insurer/claims/{n.insurer_code}/{n.external_claim_id}/{event}")
            assert r.status_code == 200, r.text
    case = _case(runtime, a.ref)
    assert case.state == "closed"
    assert case.t4_assessed_at is not None
    assert case.t5_paid_at is not None

    # The join code after the case closed: refused, clearly.
    r = client.post("/accidents/join", data={"code": code}, follow_redirects=False)
    assert r.status_code == 409
    assert 'data-error="closed"' in r.text


def test_a_third_driver_cannot_join(client: TestClient, areas: City) -> None:
    _a, code = open_case(client)
    join(client, code)
    r = client.post("/accidents/join", data={"code": code}, follow_redirects=False)
    assert r.status_code == 409
    assert 'data-error="full"' in r.text
    r = client.post("/accidents/join", data={"code": "ZZZZZZZZ"}, follow_redirects=False)
    assert r.status_code == 404


def test_photos_that_are_not_images_or_too_large_are_refused(
    client: TestClient, areas: City
) -> None:
    a, _ = open_case(client)
    r = a.post(
        "/photos/contact", files={"photo": ("x.jpg", b"<html>not a photo</html>", "image/jpeg")}
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    phone_sized = jpeg(1) + b"\0" * (2 * 1024 * 1024)  # over the platform's 1 MiB default
    r = a.post("/photos/wide_1", files={"photo": ("x.jpg", phone_sized, "image/jpeg")})
    assert r.status_code == 303  # photo routes take 8 MiB
    big = jpeg(1) + b"\0" * (9 * 1024 * 1024)
    r = a.post("/photos/contact", files={"photo": ("x.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    r = a.post("/photos/contact", files={"photo": ("x.jpg", jpeg(2), "image/jpeg")})
    assert r.status_code == 303


def test_disagreeing_accounts_escalate_to_an_officer(
    runtime: Runtime, client: TestClient, areas: City, make_actor: Any
) -> None:
    a, code = open_case(client)
    b = join(client, code)
    upload_all(a, 500)
    fill(a, plate="沪A11111", own=["stationary"], other=["rear_ending"], phone="13900000003")
    fill(b, plate="沪B22222", own=["straight"], other=["changing_lanes"], phone="13900000004")
    case = _case(runtime, a.ref)
    assert case.state == "escalated"
    assert case.escalation_reason == "accounts_disagree"
    assert case.review_alert_id is not None
    assert "data-escalated" in client.get(a.page).text
    officer = make_actor("officer", areas.stations[0])
    listed = client.get("/api/accidents?state=escalated", headers=officer.headers).json()
    assert [c["ref"] for c in listed["items"]] == [a.ref]
    detail = client.get(f"/api/accidents/{case.id}", headers=officer.headers).json()
    assert detail["personal_visible"] is True
    assert {p["plate"] for p in detail["parties"]} == {"沪A11111", "沪B22222"}
    with runtime.sessions() as s:
        reads = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "accidents.read_personal")
        ).all()
    assert len(reads) == 1
    other = make_actor("officer", areas.stations[2])
    assert client.get(f"/api/accidents/{case.id}", headers=other.headers).status_code == 404
    body = {"notes": "dashcam shows A stationary", "share_a": 0}
    r = client.post(f"/api/accidents/{case.id}/decisions/rule", json=body, headers=officer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "evidence_complete"
    assert r.json()["liability"]["decided_by"] == "officer"


def test_a_no_in_the_checklist_escalates_with_call_122(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    a, code = open_case(client, no_injuries="no")
    case = _case(runtime, a.ref)
    assert case.state == "escalated"
    assert case.escalation_reason == "not_eligible"
    assert code == ""  # no QR for a case that must go to the police
    r = client.post("/accidents/join", data={"code": "AAAAAAAA"}, follow_redirects=False)
    assert r.status_code == 404


def test_the_verdict_names_the_rule_in_chinese_and_english(client: TestClient, areas: City) -> None:
    a, _, _ = rear_end(client, seed=11)
    zh = client.get(a.page, headers={"Accept-Language": "zh-CN"}).text
    en = client.get(a.page, headers={"Accept-Language": "en"}).text
    assert "追尾（未与前车保持安全距离）" in zh
    assert "Rear-end collision (not keeping a safe distance)" in en
    assert "《道路交通安全法》第四十三条" in en  # the legal basis is cited in both


def test_officers_refer_or_resume_escalated_cases(
    runtime: Runtime, client: TestClient, areas: City, make_actor: Any
) -> None:
    officer = make_actor("officer", areas.stations[0])
    analyst = make_actor("analyst", areas.stations[0])
    refused, _ = open_case(client, vehicles_drivable="no")
    case = _case(runtime, refused.ref)
    url = f"/api/accidents/{case.id}/decisions"
    body = {"notes": "sent a patrol"}
    assert client.post(f"{url}/refer", json=body, headers=analyst.headers).status_code == 403
    r = client.post(f"{url}/resume", json=body, headers=officer.headers)
    assert r.status_code == 409  # no verdict of the table to resume
    r = client.post(f"{url}/refer", json=body, headers=officer.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "closed"
    assert [e["to_state"] for e in r.json()["timeline"]][-1] == "closed"
    again = client.post(f"{url}/refer", json=body, headers=officer.headers)
    assert again.status_code == 409
