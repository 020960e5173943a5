"""The fraud API: who may ingest, review, export and read; the public appeal."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import OKPKey

from safecity.fraud import indicators, pipeline
from tests.conftest import City

pytestmark = pytest.mark.db

CALL = {
    "id": "c1",
    "caller": "17012345678",
    "callee": "13800138000",
    "started_at": "2026-11-26T10:00:00+08:00",
}


def test_feeds_are_ingested_by_devices_only(
    client: TestClient, city: City, make_actor: Any
) -> None:
    pipeline.HOST.reset()
    device = make_actor("device", city.city, kind="device")
    officer = make_actor("officer", city.stations[0])
    body = {"records": [CALL, {**CALL, "ended_at": "2026-11-26T10:09:00+08:00"}]}
    assert (
        client.post("/api/fraud/feeds/call", json=body, headers=officer.headers).status_code == 403
    )
    r = client.post("/api/fraud/feeds/call", json=body, headers=device.headers)
    assert r.status_code == 202, r.text
    assert r.json() == {"feed": "call", "accepted": 2}
    bad = client.post(
        "/api/fraud/feeds/call", json={"records": [{**CALL, "callee": "x"}]}, headers=device.headers
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert "record 0" in bad.json()["detail"]
    unknown = client.post("/api/fraud/feeds/fax", json=body, headers=device.headers)
    assert unknown.status_code == 422


def test_review_export_and_the_public_key(client: TestClient, city: City, make_actor: Any) -> None:
    supervisor = make_actor("supervisor", city.city)
    analyst = make_actor("analyst", city.city)
    entry = {"kind": "phone", "value": "17012345678", "source": "report", "evidence": "R-1 R-2"}
    assert (
        client.post("/api/fraud/indicators", json=entry, headers=analyst.headers).status_code == 403
    )
    no_evidence = client.post(
        "/api/fraud/indicators", json={**entry, "evidence": ""}, headers=supervisor.headers
    )
    assert no_evidence.status_code == 422
    r = client.post("/api/fraud/indicators", json=entry, headers=supervisor.headers)
    assert r.status_code == 201, r.text
    entry_id = r.json()["id"]
    assert r.json()["state"] == "proposed"
    r = client.post(
        f"/api/fraud/indicators/{entry_id}/transitions/approve", json={}, headers=supervisor.headers
    )
    assert r.json()["state"] == "active"
    listed = client.get("/api/fraud/indicators", headers=analyst.headers).json()
    assert [i["value"] for i in listed] == ["+8617012345678"]
    one = client.get(f"/api/fraud/indicators/{entry_id}", headers=analyst.headers)
    assert one.json()["value"] == "+8617012345678"
    assert client.get("/api/fraud/indicators/nope", headers=analyst.headers).status_code == 404
    assert (
        client.get("/api/fraud/exports/blocklist.csv", headers=analyst.headers).status_code == 403
    )
    csv_text = client.get("/api/fraud/exports/blocklist.csv", headers=supervisor.headers).text
    assert "+8617012345678" in csv_text
    token = client.get("/api/fraud/exports/blocklist.jws", headers=supervisor.headers).text
    jwk = client.get("/api/fraud/exports/key").json()  # public: receivers fetch it
    assert "d" not in jwk  # never the private half
    body = indicators.verify_feed(token, OKPKey.import_key(jwk))
    assert body["entries"][0]["value"] == "+8617012345678"


def test_the_public_appeal_answers_the_same_for_listed_and_unlisted(
    client: TestClient, city: City, make_actor: Any
) -> None:
    supervisor = make_actor("supervisor", city.city)
    client.post(
        "/api/fraud/indicators",
        json={
            "kind": "phone",
            "value": "13800138000",
            "source": "case",
            "evidence": "C-1",
            "active": True,
        },
        headers=supervisor.headers,
    )
    answers = []
    for number in ("13800138000", "13900139000"):
        r = client.post(
            "/api/fraud/appeals",
            json={
                "kind": "phone",
                "value": number,
                "contact": "me@example.com",
                "reason": "my own number",
            },
        )
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1] == (202, {"status": "received"})
    appeals = client.get("/api/fraud/appeals", headers=supervisor.headers).json()
    assert len(appeals) == 1
    r = client.post(
        f"/api/fraud/appeals/{appeals[0]['id']}/decision",
        json={"uphold": True, "notes": "re-assigned number"},
        headers=supervisor.headers,
    )
    assert r.json()["state"] == "upheld"


def test_dashboard_and_actions_are_read_by_analysts(
    client: TestClient, city: City, make_actor: Any
) -> None:
    analyst = make_actor("analyst", city.city)
    citizen = make_actor("citizen", city.city)
    assert client.get("/api/fraud/dashboard", headers=citizen.headers).status_code == 403
    board = client.get("/api/fraud/dashboard", headers=analyst.headers)
    assert board.status_code == 200
    assert set(board.json()["totals"]) >= {
        "numbers_shut",
        "sites_blocked",
        "money_frozen_cny",
        "people_dissuaded",
    }
    assert client.get("/api/fraud/actions", headers=analyst.headers).json() == []
    missing = client.get("/api/fraud/actions/nope", headers=analyst.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    feeds = client.get("/api/fraud/feeds", headers=analyst.headers).json()
    assert set(feeds) == {"call", "sms", "web", "transfer", "report", "confirmed"}
    assert all(f["purpose"] == "fraud_prevention" for f in feeds.values())
