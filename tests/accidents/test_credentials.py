"""Licence and plate from e-services' verifiable credentials on the data step (issue 11).

Certificates are issued through the e-services registry (as the applications service
does), their ``SC1:`` QR minted as the holder's app would; the driver posts the QR text.
A VALID e-driving licence fills the licence number and the holder's name, a VALID
vehicle e-registration the plate, each marked as verified in the party's data, on the
page and in the sealed summary. Expired, revoked, suspended, tampered, wrong-type and
too-narrow QRs are refused with their reason and change nothing; a revoked licence
flags the case and routes it to the police.
"""

from __future__ import annotations

import json
import zlib
from datetime import timedelta
from typing import Any

import base45  # type: ignore[import-untyped]
import cbor2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.accidents import agreement_pdf
from safecity.accidents.models import AccidentCase, AccidentParty
from safecity.eservices import registry
from safecity.eservices.credentials.cwt_qr import PREFIX
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from safecity.security.audit import AuditEntry
from tests.accidents.flow import Driver, fill, join, open_case, sign, upload_all
from tests.conftest import City
from tests.eservices.registry_fixtures import CLAIMS, People, people, principal

__all__ = ["people"]  # the fixture, imported for pytest

pytestmark = pytest.mark.db

LICENCE_NO = "310101199001011234"  # what tests.accidents.flow.fill types
PLATE = "沪A12345"
LICENCE_CLAIMS: dict[str, Any] = {
    "family_name": "王",
    "given_name": "小明",
    "birthdate": "1990-01-01",
    "id_number": LICENCE_NO,
    "attributes": {"licence_class": "C1", "valid_from": "2020-01-01", "valid_until": "2030-01-01"},
}
REGISTRATION_CLAIMS: dict[str, Any] = {
    "family_name": "王",
    "given_name": "小明",
    "id_number": LICENCE_NO,
    "attributes": {"plate_number": PLATE, "vin_last6": "A12345"},
}


def _issue(runtime: Runtime, people: People, item: str, claims: dict[str, Any], **kw: Any) -> str:
    with runtime.sessions.begin() as s:
        cert = registry.issue_for_application(
            session=s,
            principal=principal(s, people.officer),
            application_id=kw.pop("application_id", f"app-{item}"),
            item_code=item,
            holder_user_id=people.citizen.user_id,
            claims=claims,
            org_id=people.station_id,
            **kw,
        )
    return cert.id


def licence(runtime: Runtime, people: People, **kw: Any) -> str:
    return _issue(runtime, people, "driving-licence-renewal", LICENCE_CLAIMS, **kw)


def registration(runtime: Runtime, people: People, **kw: Any) -> str:
    return _issue(runtime, people, "vehicle-reg-cert-replacement", REGISTRATION_CLAIMS, **kw)


def qr(runtime: Runtime, people: People, cert_id: str, profile: str, **kw: Any) -> str:
    """The holder's app shows the QR of one purpose profile (valid 5 minutes)."""
    with runtime.sessions.begin() as s:
        return registry.certificate_qr(
            session=s,
            principal=principal(s, people.citizen),
            certificate_id=cert_id,
            profile=profile,
            **kw,
        )


def change(runtime: Runtime, people: People, action: str, cert_id: str) -> None:
    with runtime.sessions.begin() as s:
        getattr(registry, action)(
            session=s,
            principal=principal(s, people.supervisor),
            certificate_id=cert_id,
            reason="licence withdrawn by the traffic police",
        )


def party(runtime: Runtime, driver: Driver) -> AccidentParty:
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == driver.ref)).one()
        row = s.scalars(
            select(AccidentParty).where(
                AccidentParty.case_id == case.id, AccidentParty.role == driver.role
            )
        ).one()
        s.expunge(row)
        return row


def case_of(runtime: Runtime, driver: Driver) -> AccidentCase:
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == driver.ref)).one()
        s.expunge(case)
        return case


def post(driver: Driver, kind: str, text: str) -> Any:
    return driver.post(f"/credentials/{kind}", data={"text": text})


def tamper(text: str) -> str:
    """The same QR with its CWT payload edited (an ID digit changed), not re-signed."""
    cose = cbor2.loads(zlib.decompress(base45.b45decode(text[len(PREFIX) :])))
    parts = cose.value if isinstance(cose, cbor2.CBORTag) else cose
    parts[2] = parts[2].replace(b"1234", b"9999")
    encoded = cbor2.dumps(cbor2.CBORTag(18, parts) if isinstance(cose, cbor2.CBORTag) else parts)
    packed: bytes = base45.b45encode(zlib.compress(encoded, 9))
    return PREFIX + packed.decode()


def test_a_valid_e_licence_and_e_registration_fill_the_data_and_the_seal(
    runtime: Runtime, client: TestClient, areas: City, people: People
) -> None:
    a, code = open_case(client)
    b = join(client, code)
    licence_qr = qr(runtime, people, licence(runtime, people), "roadside-police")
    r = post(a, "licence", "  " + licence_qr[:60] + "\n" + licence_qr[60:] + "\n")  # a paste
    assert r.status_code == 303, r.text
    assert post(a, "registration", qr(runtime, people, registration(runtime, people), "employer"))
    row = party(runtime, a)
    assert (row.licence_no, row.holder_name, row.plate) == (LICENCE_NO, "王小明", PLATE)
    src = row.field_sources["licence_no"]
    assert src["source"] == "credential"
    assert src["certificate_type"] == "driving-licence"
    assert src["verdict"] == "VALID"
    assert len(src["credential_digest"]) == 64
    assert src["verified_at"]
    assert src["status_as_of"]
    assert row.field_sources["plate"]["certificate_type"] == "vehicle-registration-certificate"
    assert case_of(runtime, a).flags == []
    page = client.get(a.page)
    assert 'data-verified-field="licence_no"' in page.text
    assert 'data-verified-field="plate"' in page.text
    assert "王小明" in page.text
    assert "王小明" not in client.get(b.page).text  # the other driver never sees it
    with runtime.sessions() as s:
        actions = s.scalars(select(AuditEntry.action)).all()
    assert actions.count("accidents.credential_fill") == 2

    # the rest is typed; the verified values saved unchanged stay verified
    upload_all(a, 700)
    fill(a, plate=PLATE, own=["stationary"], other=["rear_ending"], phone="13900000001")
    fill(b, plate="沪B54321", own=["rear_ending"], other=["stationary"], phone="13900000002")
    row = party(runtime, a)
    assert row.field_sources["licence_no"]["source"] == "credential"
    assert row.field_sources["phone"] == {"source": "typed"}
    assert party(runtime, b).field_sources["plate"] == {"source": "typed"}
    assert case_of(runtime, a).state == "evidence_complete"
    sign(runtime, a)
    sign(runtime, b)
    doc = client.get(a.page + "/sealed.json").json()
    parties = {p["role"]: p for p in doc["document"]["summary"]["parties"]}
    assert set(parties["A"]["verified"]) == {"licence_no", "plate"}
    assert parties["A"]["verified"]["licence_no"]["credential_digest"] == src["credential_digest"]
    assert "verified" not in parties["B"]  # typed only: the summary as before
    assert "王小明" not in json.dumps(doc, ensure_ascii=False)  # no names in the seal
    lines = dict(row for _, rows in agreement_pdf.agreement_lines(doc) for row in rows)
    assert lines["A: licence no."].endswith("(verified from e-certificate)")
    assert lines["B: plate"] == "沪B54321"


def test_typing_over_a_verified_licence_makes_it_typed(
    runtime: Runtime, client: TestClient, areas: City, people: People
) -> None:
    a, _ = open_case(client)
    assert post(a, "licence", qr(runtime, people, licence(runtime, people), "roadside-police"))
    data = {
        "plate": PLATE,
        "licence_no": "310101199001019999",
        "insurer_code": "demo_pingan",
        "policy_no": "PDAA2026A0001",
        "phone": "13900000001",
    }
    assert a.post("/data", data=data).status_code == 303
    row = party(runtime, a)
    assert row.field_sources["licence_no"] == {"source": "typed"}
    assert row.holder_name == ""
    assert 'data-verified-field="licence_no"' not in client.get(a.page).text


def _unchanged(runtime: Runtime, driver: Driver) -> None:
    row = party(runtime, driver)
    assert (row.licence_no, row.plate, row.holder_name) == ("", "", "")
    assert row.field_sources == {}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("expired", "expired"),
        ("tampered", "invalid"),
        ("no_criminal_record", "wrong_type"),
        ("licence_as_registration", "wrong_type"),
        ("hotel_profile", "too_little"),
        ("garbage", "not_qr"),
    ],
)
def test_refused_credentials_change_nothing(
    runtime: Runtime, client: TestClient, areas: City, people: People, case: str, code: str
) -> None:
    a, _ = open_case(client)
    kind = "licence"
    if case == "expired":  # shown 10 minutes ago: a QR lives 5
        cert = licence(runtime, people, now=utcnow() - timedelta(days=1))
        text = qr(runtime, people, cert, "roadside-police", now=utcnow() - timedelta(minutes=10))
    elif case == "tampered":
        text = tamper(qr(runtime, people, licence(runtime, people), "roadside-police"))
    elif case == "no_criminal_record":
        cert = _issue(runtime, people, "no-criminal-record", CLAIMS)
        text = qr(runtime, people, cert, "roadside-police")
    elif case == "licence_as_registration":
        kind, text = "registration", qr(runtime, people, licence(runtime, people), "employer")
    elif case == "hotel_profile":  # names and the last 4 digits only: no licence number
        text = qr(runtime, people, licence(runtime, people), "hotel")
    else:
        text = "https://example.com/not-a-certificate"
    r = post(a, kind, text)
    assert r.status_code == 422
    assert f'data-cred-error="{code}"' in r.text
    _unchanged(runtime, a)
    assert case_of(runtime, a).flags == []
    assert case_of(runtime, a).state == "opened"


def test_a_revoked_e_licence_is_refused_flagged_and_routed_to_the_police(
    runtime: Runtime, client: TestClient, areas: City, people: People
) -> None:
    a, code = open_case(client)
    join(client, code)
    cert = licence(runtime, people)
    text = qr(runtime, people, cert, "roadside-police")  # shown just before the revocation
    change(runtime, people, "revoke", cert)
    r = post(a, "licence", text)
    assert r.status_code == 422
    assert 'data-cred-error="revoked"' in r.text
    assert "data-escalated" in r.text  # "call 122" on the driver's page
    _unchanged(runtime, a)
    case = case_of(runtime, a)
    codes = [f["code"] for f in case.flags]
    assert "licence_revoked" in codes
    assert case.state == "escalated"
    assert case.escalation_reason == "not_eligible"
    assert "licences_valid" in case.escalation_detail
    assert case.review_alert_id is not None


def test_a_suspended_e_registration_is_flagged_but_the_case_goes_on(
    runtime: Runtime, client: TestClient, areas: City, people: People
) -> None:
    a, _ = open_case(client)
    cert = registration(runtime, people)
    text = qr(runtime, people, cert, "employer")
    change(runtime, people, "suspend", cert)
    r = post(a, "registration", text)
    assert r.status_code == 422
    assert 'data-cred-error="suspended"' in r.text
    _unchanged(runtime, a)
    case = case_of(runtime, a)
    assert [f["code"] for f in case.flags] == ["registration_suspended"]
    assert case.state == "opened"


@pytest.mark.parametrize(
    ("lang", "texts"),
    [
        ("zh", ["用我的电子驾驶证填写", "用机动车电子登记证书填写", "暂无电子保险凭证"]),
        ("en", ["Fill from my e-driving licence", "e-registration certificate", "no e-insurance"]),
    ],
)
def test_the_data_step_offers_the_credential_controls(
    client: TestClient, areas: City, lang: str, texts: list[str]
) -> None:
    a, _ = open_case(client)
    page = client.get(a.page, headers={"Accept-Language": lang})
    assert page.status_code == 200
    for text in texts:
        assert text in page.text
    for kind in ("licence", "registration"):
        assert f'action="{a.page}/credentials/{kind}"' in page.text
    assert "console/accidents_credential.js" in page.text
    assert "vendor/jsqr/jsQR.js" in page.text
    assert "camera=(self)" in page.headers["permissions-policy"]
    assert "<script>" not in page.text  # the CSP allows no inline script
