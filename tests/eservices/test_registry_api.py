"""The registry's HTTP API: citizen QR / PDF, staff revoke, public status lists and verify."""

from __future__ import annotations

import io

import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image

from safecity.eservices.credentials import KeySet, load_bundle
from safecity.eservices.credentials.jose import parse_unverified, verify_jwt
from safecity.eservices.credentials.status_list import (
    bit_at,
    decode_bitstring,
    read_token_status_list,
)
from safecity.eservices.registry_models import Certificate
from safecity.platform.runtime import Runtime
from tests.eservices.registry_fixtures import People, issue, people

__all__ = ["people"]

API = "/api/eservices"


def _problem(response: object) -> dict[str, object]:
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["detail"]
    return body  # type: ignore[no-any-return]


def test_citizen_lists_and_gets_a_png_qr_that_decodes_and_verifies(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people)
    h = people.citizen.headers
    listed = client.get(f"{API}/me/certificates", headers=h)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [cert.id]
    assert "claims" not in listed.json()[0]
    png = client.get(f"{API}/me/certificates/{cert.id}/qr?format=png", headers=h)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
    assert len(decoded) == 1
    text = decoded[0].text
    assert text.startswith("SC1:")
    assert len(text) <= 400
    verdict = client.post(f"{API}/verify", json={"text": text})
    assert verdict.status_code == 200
    body = verdict.json()
    assert body["status"] == "VALID"
    assert body["claims"] == {"family_name": "王", "given_name": "小明", "id_last4": "1234"}
    svg = client.get(f"{API}/me/certificates/{cert.id}/qr?format=svg&profile=age-check", headers=h)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    pdf = client.get(f"{API}/me/certificates/{cert.id}/pdf", headers=h)
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF")
    detail = client.get(f"{API}/me/certificates/{cert.id}", headers=h).json()
    assert detail["claims"]["id_number"] == "310101199005171234"


def test_another_citizen_sees_nothing_and_cannot_revoke(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people)
    h = people.other.headers
    for path in ("", "/qr", "/pdf"):
        r = client.get(f"{API}/me/certificates/{cert.id}{path}", headers=h)
        assert r.status_code == 404
        _problem(r)
    r = client.post(f"{API}/certificates/{cert.id}/revoke", json={"reason": "x"}, headers=h)
    assert r.status_code == 403
    assert client.get(f"{API}/me/certificates", headers=h).json() == []
    assert client.get(f"{API}/me/certificates").status_code == 401


def test_staff_revoke_turns_the_verdict_to_revoked_with_reason(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people)
    text = client.get(f"{API}/me/certificates/{cert.id}/qr", headers=people.citizen.headers).text
    assert client.post(f"{API}/verify", json={"text": text}).json()["status"] == "VALID"
    bad = client.post(
        f"{API}/certificates/{cert.id}/revoke",
        json={"reason": ""},
        headers=people.supervisor.headers,
    )
    assert bad.status_code == 422
    _problem(bad)
    far = client.post(
        f"{API}/certificates/{cert.id}/revoke",
        json={"reason": "x"},
        headers=people.outsider.headers,
    )
    assert far.status_code == 404
    odd = client.post(
        f"{API}/certificates/{cert.id}/revoke",
        json={"reason": "x", "code": "because"},
        headers=people.supervisor.headers,
    )
    assert odd.status_code == 422
    _problem(odd)
    done = client.post(
        f"{API}/certificates/{cert.id}/revoke",
        json={"reason": "obtained by fraud", "code": "withdrawn_by_authority"},
        headers=people.supervisor.headers,
    )
    assert done.status_code == 200
    assert done.json()["status"] == "revoked"
    assert done.json()["reason_code"] == "withdrawn_by_authority"
    assert done.json()["reason"] == "obtained by fraud"  # staff see the free text
    body = client.post(f"{API}/verify", json={"text": text}).json()
    assert body["status"] == "REVOKED"
    assert body["reason_code"] == "withdrawn_by_authority"
    assert "fraud" not in str(body)  # the public verdict shows the code only
    again = client.post(
        f"{API}/certificates/{cert.id}/revoke",
        json={"reason": "x"},
        headers=people.supervisor.headers,
    )
    assert again.status_code == 409
    qr = client.get(f"{API}/me/certificates/{cert.id}/qr", headers=people.citizen.headers)
    assert qr.status_code == 409
    staff = client.get(f"{API}/certificates?state=revoked", headers=people.officer.headers)
    assert [c["id"] for c in staff.json()] == [cert.id]
    assert client.get(f"{API}/certificates", headers=people.outsider.headers).json() == []


def test_suspend_and_reinstate_over_the_api(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people)
    text = client.get(f"{API}/me/certificates/{cert.id}/qr", headers=people.citizen.headers).text
    h = people.supervisor.headers
    assert (
        client.post(
            f"{API}/certificates/{cert.id}/suspend", json={"reason": "check"}, headers=h
        ).status_code
        == 200
    )
    body = client.post(f"{API}/verify", json={"text": text}).json()
    assert body["status"] == "SUSPENDED"
    assert (
        client.post(f"{API}/certificates/{cert.id}/reinstate", json={}, headers=h).status_code
        == 200
    )
    assert client.post(f"{API}/verify", json={"text": text}).json()["status"] == "VALID"


def test_published_status_lists_show_a_revocation(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people)
    client.post(
        f"{API}/certificates/{cert.id}/revoke",
        json={"reason": "r"},
        headers=people.supervisor.headers,
    )
    with runtime.sessions() as s:
        row = s.get(Certificate, cert.id)
        assert row is not None
        indices = row.status_indices
    keys = KeySet.from_jwks(client.get(f"{API}/issuer-keys").json())
    token = client.get("/status/1")
    assert token.status_code == 200
    assert token.headers["content-type"].startswith("application/statuslist+jwt")
    assert parse_unverified(token.text).payload["ttl"] == 300
    snap = read_token_status_list(token.text, keys)
    assert snap.data
    assert len(snap.data) * 4 >= 131_072
    assert all(snap.status(i) == 1 for i in indices)
    doc = client.get("/status/1/revocation").json()
    assert doc["credentialSubject"]["ttl"] == 300_000
    bits = decode_bitstring(doc["credentialSubject"]["encodedList"])
    assert all(bit_at(bits, i) == 1 for i in indices)
    signed = client.get("/status/1/suspension", headers={"Accept": "application/vc+jwt"})
    assert signed.headers["content-type"].startswith("application/vc+jwt")
    parsed, _ = verify_jwt(signed.text, keys, typ="vc+jwt")
    assert parsed.payload["credentialSubject"]["statusPurpose"] == "suspension"
    assert client.get("/status/99").status_code == 404
    assert client.get("/status/1/other").status_code == 422
    meta = client.get("/.well-known/jwt-vc-issuer").json()
    assert meta["jwks"] == keys.jwks()


def test_trust_bundle_and_anchor(runtime: Runtime, client: TestClient, people: People) -> None:
    issue(runtime, people)
    anchors = KeySet.from_jwks(client.get(f"{API}/trust-anchor").json())
    bundle = load_bundle(client.get(f"{API}/trust-bundle").text, anchors)
    assert len(bundle.keys) == 1
    assert list(bundle.snapshots) == ["https://safecity.example/status/1"]


def test_verify_api_bad_input_and_challenge(client: TestClient) -> None:
    r = client.post(f"{API}/verify", json={"text": ""})
    assert r.status_code == 422
    _problem(r)
    junk = client.post(f"{API}/verify", json={"text": "SC1:!!!"}).json()
    assert junk["status"] == "INVALID"
    kb = client.post(f"{API}/verify", json={"text": "eyJ.eyJ.sig~abc~"}).json()
    assert kb["status"] == "INVALID"
    assert kb["code"] == "kb-missing"
    nosy = client.post(f"{API}/verify", json={"text": "SC1:X", "profile": "nosy"})
    assert nosy.status_code == 422
    _problem(nosy)
    too_long = client.post(f"{API}/verify", json={"text": "x" * 20_000})
    assert too_long.status_code == 422
    ch = client.post(f"{API}/verify/challenge", json={"audience": "hotel-1"}).json()
    assert ch["audience"] == "hotel-1"
    assert len(ch["nonce"]) >= 20


def test_presentation_over_the_api_with_a_challenge(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people)
    ch = client.post(f"{API}/verify/challenge", json={"audience": "hotel-7"}).json()
    pres = client.post(
        f"{API}/me/certificates/{cert.id}/presentations",
        json={"profile": "hotel", "audience": "hotel-7", "nonce": ch["nonce"]},
        headers=people.citizen.headers,
    )
    assert pres.status_code == 200
    body = {"text": pres.json()["presentation"], "audience": "hotel-7", "nonce": ch["nonce"]}
    first = client.post(f"{API}/verify", json=body).json()
    assert first["status"] == "VALID"
    assert set(first["claims"]) == {"family_name", "given_name", "id_last4"}
    replay = client.post(f"{API}/verify", json=body).json()
    assert replay["status"] == "INVALID"
