"""Evidence flags go to an officer and never block: a photo reused from another case, a
photo taken far away; signing codes are checked; the console lists escalations and times."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from safecity.accidents import evidence, service
from safecity.accidents.models import AccidentCase, AccidentPhoto
from safecity.alerts.models import Alert
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime
from tests.accidents.flow import jpeg, last_code, open_case, rear_end, sign
from tests.accidents.test_exif import photo as exif_photo
from tests.conftest import City

pytestmark = pytest.mark.db


def _case(runtime: Runtime, ref: str) -> AccidentCase:
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).one()
        s.expunge(case)
        return case


def test_a_photo_reused_from_another_case_is_flagged_not_refused(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    first, _ = open_case(client)
    second, _ = open_case(client)
    same = jpeg(42, size=96)
    for driver in (first, second):
        r = driver.post("/photos/contact", files={"photo": ("c.jpg", same, "image/jpeg")})
        assert r.status_code == 303
    case = _case(runtime, second.ref)
    assert "duplicate_exact_bytes" in {f["code"] for f in case.flags}
    assert case.state == "opened"  # flags never block
    with runtime.sessions() as s:
        photo = s.scalars(select(AccidentPhoto).where(AccidentPhoto.case_id == case.id)).one()
        assert photo.matches[0]["case_id"] == _case(runtime, first.ref).id
        alert = s.get(Alert, case.review_alert_id)
        assert alert is not None
        assert alert.category == "accident_review"
    assert not _case(runtime, first.ref).flags  # the first upload matched nothing


def test_a_photo_taken_far_from_the_claimed_place_is_flagged(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    a, _ = open_case(client)
    far = exif_photo(gps=(39.9042, 116.4074))  # Beijing
    r = a.post("/photos/wide_1", files={"photo": ("w.jpg", far, "image/jpeg")})
    assert r.status_code == 303
    codes = {f["code"] for f in _case(runtime, a.ref).flags}
    assert "place_far_from_claim" in codes


def test_a_wrong_or_missing_code_does_not_sign(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    a, _, _ = rear_end(client, seed=3)
    r = a.post("/sign", data={"code": "123456"})
    assert r.status_code == 422  # no code was sent yet
    assert a.post("/otp").status_code == 303

    good = last_code(runtime)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    r = a.post("/sign", data={"code": wrong})
    assert r.status_code == 422
    assert 'data-error="wrong_code"' in r.text
    assert _case(runtime, a.ref).state == "evidence_complete"
    with runtime.sessions() as s:  # the failed attempt was kept (no unlimited guessing)
        party = service.parties(s, s.get_one(AccidentCase, _case(runtime, a.ref).id))["A"]
        assert party.otp_attempts == 1
    assert a.post("/sign", data={"code": good}).status_code == 303
    # A used code cannot sign again.
    assert a.post("/sign", data={"code": good}).status_code == 422


def test_the_console_lists_escalations_and_median_times(
    runtime: Runtime, client: TestClient, areas: City, make_actor: Any
) -> None:
    a, b, _ = rear_end(client, seed=5)
    sign(runtime, a)
    sign(runtime, b)
    escalated, _code = open_case(client, insured="no")
    officer = make_actor("officer", areas.stations[0])
    page = client.get("/console/accidents", headers=officer.headers)
    assert page.status_code == 200
    case = _case(runtime, escalated.ref)
    assert f'data-case-id="{case.id}"' in page.text
    assert f'data-district="{areas.districts[0].id}"' in page.text
    timings = client.get("/api/accidents/timings", headers=officer.headers).json()
    assert [t["org_id"] for t in timings] == [areas.districts[0].id]
    assert timings[0]["cases"] == 1
    assert timings[0]["median_t2_t3_s"] is not None
    citizen = make_actor("citizen", areas.stations[0])
    assert client.get("/api/accidents", headers=citizen.headers).status_code == 403


def test_the_demo_simulation_settles_a_rear_end_and_the_demo_insurers_acknowledge(
    runtime: Runtime, areas: City
) -> None:
    from safecity.accidents.demo import simulate_rear_end

    ref = simulate_rear_end(runtime, lat=31.205, lng=121.405)
    case = _case(runtime, ref)
    assert case.state == "notified"
    assert case.liability is not None
    assert (case.liability["share_a"], case.liability["share_b"]) == (0, 100)
    assert case.t3_insurer_ack_at is not None
    assert not case.flags  # synthetic photos: no duplicates, no EXIF to contradict
    # a rerun of the demo returns the same case instead of a repeat of the same drivers
    assert simulate_rear_end(runtime, lat=31.205, lng=121.405) == ref
    with runtime.sessions() as s:
        assert len(s.scalars(select(AccidentCase.id)).all()) == 1


def test_an_oversized_photo_is_refused_by_the_service_too(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    from safecity.platform.errors import PayloadTooLarge

    a, _ = open_case(client)
    big = jpeg(9) + b"\0" * evidence.PHOTO_LIMITS.max_bytes
    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == a.ref)).one()
        party = service.parties(s, case)["A"]
        with pytest.raises(PayloadTooLarge):
            evidence.add_photo(session=s, case=case, party=party, position="contact", data=big)
        with pytest.raises(InvalidInput):
            evidence.add_photo(session=s, case=case, party=party, position="roof", data=jpeg(9))


def test_the_state_machine_reaches_every_state() -> None:
    from safecity.accidents.workflow import ACCIDENT, STATES

    assert ACCIDENT.reachable_states() == frozenset(STATES)
    assert ACCIDENT.terminal_states() == frozenset({"closed"})


def test_officers_read_photos_in_scope_originals_only_at_the_own_station(
    runtime: Runtime, client: TestClient, areas: City, make_actor: Any
) -> None:
    import io

    from PIL import Image

    a, _ = open_case(client)
    data = exif_photo(gps=(31.205, 121.405))
    assert (
        a.post("/photos/contact", files={"photo": ("c.jpg", data, "image/jpeg")}).status_code == 303
    )
    case = _case(runtime, a.ref)
    with runtime.sessions() as s:
        photo_id = s.scalars(select(AccidentPhoto.id).where(AccidentPhoto.case_id == case.id)).one()
    url = f"/api/accidents/{case.id}/photos/{photo_id}"
    own = make_actor("officer", areas.stations[0])
    r = client.get(url, headers=own.headers)
    assert r.status_code == 200
    assert r.content == data  # the original, EXIF and all
    district = make_actor("supervisor", areas.districts[0])
    r = client.get(url + "?blur=0,0,32,24", headers=district.headers)
    assert r.status_code == 200
    shared = Image.open(io.BytesIO(r.content))
    assert not shared.getexif()  # no EXIF, no GPS in a shared copy
    other = make_actor("officer", areas.stations[2])
    assert client.get(url, headers=other.headers).status_code == 404
    with runtime.sessions() as s:
        from safecity.security.audit import AuditEntry

        reads = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "accidents.read_photo")
        ).all()
    assert sorted(r.detail["original"] for r in reads) == [False, True]


def test_a_phone_seen_in_two_other_cases_this_year_is_flagged(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    data = {
        "plate": "沪C00001",
        "licence_no": "310101199001011111",
        "insurer_code": "demo_picc",
        "policy_no": "PDAA20260042",
        "phone": "13911112222",
    }
    refs = []
    for i in range(3):
        a, _ = open_case(client)
        assert a.post("/data", data={**data, "plate": f"沪C0000{i}"}).status_code == 303
        refs.append(a.ref)
    first, second, third = (_case(runtime, r) for r in refs)
    assert not first.flags
    assert not second.flags  # one earlier case is not yet a pattern
    codes = {f["code"] for f in third.flags}
    assert {"repeat_phone", "repeat_licence"} <= codes
    assert "repeat_plate" not in codes
    assert third.state == "opened"  # flagged for review, never blocked
    assert all("13911112222" not in f["detail"] for f in third.flags)


def test_the_console_shows_an_escalated_case_and_decides_it(
    runtime: Runtime, client: TestClient, areas: City, make_actor: Any
) -> None:
    from tests.accidents.flow import fill, join, upload_all

    a, code = open_case(client)
    b = join(client, code)
    upload_all(a, 900)
    fill(a, plate="沪A33333", own=["stationary"], other=["rear_ending"], phone="13900000005")
    fill(b, plate="沪B44444", own=["straight"], other=["stationary"], phone="13900000006")
    case = _case(runtime, a.ref)
    assert case.state == "escalated"
    own = make_actor("officer", areas.stations[0])
    page = client.get(f"/console/accidents/{case.id}", headers=own.headers)
    assert page.status_code == 200
    assert "沪A33333" in page.text
    assert 'data-decision="rule"' in page.text
    assert 'data-decision="resume"' not in page.text  # no verdict of the table to resume
    district = make_actor("analyst", areas.districts[0])
    masked = client.get(f"/console/accidents/{case.id}", headers=district.headers)
    assert masked.status_code == 200
    assert "沪A33333" not in masked.text
    assert "data-masked" in masked.text
    assert "data-decision" not in masked.text  # analysts read, never decide
    url = f"/console/accidents/{case.id}/decisions/rule"
    bad = client.post(url, data={"notes": "", "share_a": "100"}, headers=own.headers)
    assert bad.status_code == 422
    ok = client.post(
        url,
        data={"notes": "A stopped at the light", "share_a": "0"},
        headers=own.headers,
        follow_redirects=False,
    )
    assert ok.status_code == 303
    case = _case(runtime, a.ref)
    assert case.state == "evidence_complete"
    assert case.liability is not None
    assert (case.liability["share_a"], case.review_outcome) == (0, "rule")


def test_a_fourth_case_at_the_same_corner_is_flagged_for_review(
    runtime: Runtime, client: TestClient, areas: City
) -> None:
    refs = [open_case(client)[0].ref for _ in range(3)]
    far, _ = open_case(client, lat="31.2500", lng="121.5000")  # kilometres away
    fourth, _ = open_case(client)
    assert all(not _case(runtime, r).flags for r in [*refs, far.ref])
    flags = _case(runtime, fourth.ref).flags
    assert [f["code"] for f in flags] == ["cluster_at_spot"]
    assert flags[0]["detail"].startswith("3 other case(s) within 150 m")
    assert _case(runtime, fourth.ref).state == "opened"  # a flag for review, never a block


def test_a_closed_case_is_erased_with_its_photos_after_the_retention_period(
    runtime: Runtime, areas: City
) -> None:
    from datetime import timedelta

    from safecity.accidents import jobs
    from safecity.accidents.demo import simulate_rear_end
    from safecity.platform import retention
    from safecity.platform.blobs import DiskBlobStore
    from safecity.platform.db import utcnow

    ref = simulate_rear_end(runtime, lat=31.205, lng=121.405)
    with runtime.sessions.begin() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).one()
        case.closed_at = utcnow() - jobs.KEEP_CLOSED - timedelta(days=1)
        hashes = set(
            s.scalars(select(AccidentPhoto.sha256).where(AccidentPhoto.case_id == case.id))
        )
    store = DiskBlobStore(runtime.settings.var_dir / "blobs")
    assert hashes
    assert all(store.exists(h) for h in hashes)
    report = retention.enforce(sessions=runtime.sessions)
    assert report.erased.get("accident", 0) == 1
    with runtime.sessions() as s:
        assert s.scalars(select(AccidentCase).where(AccidentCase.ref == ref)).first() is None
        assert s.scalars(select(AccidentPhoto.id)).all() == []
    assert not any(store.exists(h) for h in hashes)
