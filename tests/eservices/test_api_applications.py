"""``/api/eservices``: the catalogue, a citizen's application over HTTP, staff actions,
and problem+json for every bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from safecity.eservices import service
from safecity.platform.runtime import Runtime
from tests.conftest import Actor, City
from tests.eservices.applications_support import PDF_BYTES, People, people, png_bytes

pytestmark = pytest.mark.db
API = "/api/eservices"
PROBLEM = "application/problem+json"


@pytest.fixture
def folks(runtime: Runtime, city: City, make_actor: Callable[..., Actor]) -> People:
    return people(runtime, city, make_actor)


def _problem(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def test_catalogue_is_public(client: TestClient) -> None:
    items = client.get(f"{API}/catalogue")
    assert items.status_code == 200
    codes = {i["code"] for i in items.json()}
    assert {"no-criminal-record", "foreigner-work-residence"} <= codes
    one = client.get(f"{API}/catalogue/no-criminal-record").json()
    assert one["deadline"]["workdays"] == 3
    assert one["form_schema"]["properties"]["id_number"]["format"] == "cn-resident-id"
    _problem(client.get(f"{API}/catalogue/no-such-item"), 404)
    assert client.get(f"{API}/workflow").json()["initial"] == "draft"


def test_a_citizen_applies_and_staff_decide_over_http(client: TestClient, folks: People) -> None:
    me = folks.citizen.headers
    _problem(client.post(f"{API}/applications", json={"item_code": "no-criminal-record"}), 401)
    started = client.post(
        f"{API}/applications", json={"item_code": "no-criminal-record"}, headers=me
    )
    assert started.status_code == 201, started.text
    app = started.json()
    app_id = app["id"]
    assert app["state"] == "draft"
    assert app["actions"] == ["submit"]

    bad = client.put(
        f"{API}/applications/{app_id}/pages/applicant",
        json={"answers": {"full_name": "王小明", "id_number": "12345"}},
        headers=me,
    )
    body = _problem(bad, 422)
    assert [e["field"] for e in body["errors"]] == ["id_number"]
    assert body["errors"][0]["zh"]
    assert body["errors"][0]["en"]
    _problem(client.put(f"{API}/applications/{app_id}/pages/applicant", json={}, headers=me), 422)

    early = client.post(
        f"{API}/applications/{app_id}/submit", json={"idempotency_key": "api-key-0001"}, headers=me
    )
    assert {e["field"] for e in _problem(early, 422)["errors"]} >= {"apply_at", "purpose"}

    for page, answers in (
        ("where", {"apply_at": "household"}),
        ("purpose", {"purpose": "visa"}),
        ("declaration", {"declaration": True}),
    ):
        saved = client.put(
            f"{API}/applications/{app_id}/pages/{page}", json={"answers": answers}, headers=me
        )
        assert saved.status_code == 200, saved.text

    wrong_type = client.post(
        f"{API}/applications/{app_id}/attachments",
        data={"material_code": "agent-authorisation"},
        files={"file": ("letter.html", b"<html></html>", "text/html")},
        headers=me,
    )
    _problem(wrong_type, 422)
    lying = client.post(
        f"{API}/applications/{app_id}/attachments",
        data={"material_code": "agent-authorisation"},
        files={"file": ("letter.pdf", png_bytes(), "application/pdf")},
        headers=me,
    )
    _problem(lying, 422)
    huge = client.post(
        f"{API}/applications/{app_id}/attachments",
        data={"material_code": "agent-authorisation"},
        files={
            "file": (
                "letter.pdf",
                b"%PDF-" + b"0" * (service.MAX_ATTACHMENT_BYTES + 10),
                "application/pdf",
            )
        },
        headers=me,
    )
    _problem(huge, 413)
    ok = client.post(
        f"{API}/applications/{app_id}/attachments",
        data={"material_code": "agent-authorisation"},
        files={"file": ("letter.pdf", PDF_BYTES, "application/pdf")},
        headers=me,
    )
    assert ok.status_code == 201, ok.text
    att = ok.json()
    got = client.get(f"{API}/applications/{app_id}/attachments/{att['id']}", headers=me)
    assert got.status_code == 200
    assert got.content == PDF_BYTES

    _problem(client.post(f"{API}/applications/{app_id}/submit", json={}, headers=me), 422)
    first = client.post(
        f"{API}/applications/{app_id}/submit",
        headers={**me, "Idempotency-Key": "api-key-0001"},
    )
    assert first.status_code == 200, first.text
    retry = client.post(
        f"{API}/applications/{app_id}/submit",
        headers={**me, "Idempotency-Key": "api-key-0001"},
    )
    assert retry.json()["id"] == app_id
    assert retry.json()["reference"] == first.json()["reference"]
    assert first.json()["state"] == "submitted"
    assert first.json()["due_on"]

    mine = client.get(f"{API}/applications/mine", headers=me).json()
    assert [a["id"] for a in mine] == [app_id]
    copy = client.get(f"{API}/applications/{app_id}/copy", headers=me).json()
    assert copy["reference"] == first.json()["reference"]

    # another citizen and another org's staff do not see it
    _problem(client.get(f"{API}/applications/{app_id}", headers=folks.other_citizen.headers), 404)
    _problem(client.get(f"{API}/applications/{app_id}", headers=folks.exit_entry.headers), 404)
    assert client.get(f"{API}/queue", headers=folks.exit_entry.headers).json() == []
    _problem(client.get(f"{API}/queue", headers=me), 403)

    staff = folks.police.headers
    queue = client.get(f"{API}/queue", headers=staff).json()
    assert [a["id"] for a in queue] == [app_id]
    _problem(client.get(f"{API}/queue?state=bogus", headers=staff), 422)
    detail = client.get(f"{API}/applications/{app_id}", headers=staff).json()
    assert detail["answers"]["purpose"] == "visa"
    _problem(client.post(f"{API}/applications/{app_id}/actions/approve", headers=staff), 409)
    _problem(client.post(f"{API}/applications/{app_id}/actions/fly", headers=staff), 422)
    _problem(client.post(f"{API}/applications/{app_id}/actions/accept", headers=me), 403)
    for action in ("accept", "approve", "issue"):
        resp = client.post(f"{API}/applications/{app_id}/actions/{action}", json={}, headers=staff)
        assert resp.status_code == 200, resp.text
    final = client.get(f"{API}/applications/{app_id}", headers=me).json()
    assert final["state"] == "issued"
    assert final["certificate_id"]
    assert final["deadline"]["elapsed_workdays"] >= 0

    stats = client.get(f"{API}/stats", headers=staff)
    assert stats.status_code == 200, stats.text
    figures = stats.json()
    assert figures["materials_pulled"] >= 1
    assert figures["materials_uploaded"] == 1
    assert [i["item_code"] for i in figures["items"]] == ["no-criminal-record"]


def test_supplement_route_and_unknown_ids(client: TestClient, folks: People) -> None:
    me = folks.citizen.headers
    _problem(client.get(f"{API}/applications/nope", headers=me), 404)
    _problem(client.post(f"{API}/applications", json={"item_code": "nope"}, headers=me), 404)
    _problem(client.post(f"{API}/applications", json={"item_code": "Bad Code"}, headers=me), 422)
    _problem(client.post(f"{API}/applications", json={"item": "x"}, headers=me), 422)
    app_id = client.post(
        f"{API}/applications", json={"item_code": "household-proof"}, headers=me
    ).json()["id"]
    _problem(client.post(f"{API}/applications/{app_id}/supplement", json={}, headers=me), 409)
    _problem(
        client.post(
            f"{API}/applications/{app_id}/attachments",
            data={"material_code": "nope"},
            files={"file": ("a.pdf", PDF_BYTES, "application/pdf")},
            headers=me,
        ),
        422,
    )
