"""Pages of review applications: the console list / detail / stage actions / filing for
the citizen, and the portal's review section (file, stages, re-examination), with the
grounds rendered escaped and kept off the portal."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.cases.conftest import OpenFn
from tests.conftest import City
from tests.console.conftest import csrf_from, log_in
from tests.console.test_pages import assert_csp_clean
from tests.publicguard import assert_no_canary

pytestmark = pytest.mark.db

SCRIPT = "<script>alert('x')</script> grounds"


def test_console_files_lists_and_decides_with_grounds_escaped(
    client: TestClient, make_staff: Any, make_actor: Any, city: City, open_case: OpenFn
) -> None:
    case = open_case(0)
    boss = make_actor("supervisor", city.stations[0])
    r = client.post(
        f"/api/cases/{case.id}/transitions/close", json={"reason": "x"}, headers=boss.headers
    )
    assert r.status_code == 200
    log_in(client, make_staff("officer", city.stations[0]))
    form = client.get(f"/console/case-reviews/new?case_id={case.id}")
    assert form.status_code == 200
    token = csrf_from(form.text)
    filed = client.post(
        "/console/case-reviews/new",
        data={"csrf_token": token, "case_id": case.id, "grounds": SCRIPT},
    )
    assert filed.status_code == 200
    again = client.post(
        "/console/case-reviews/new",
        data={"csrf_token": token, "case_id": case.id, "grounds": "again"},
    )
    assert again.status_code == 409
    assert 'data-error="409"' in again.text
    assert client.get("/console/case-reviews").status_code in (403, 404)  # officer: no review

    client.cookies.clear()
    log_in(client, make_staff("supervisor", city.stations[0]))
    listing = client.get("/console/case-reviews")
    assert listing.status_code == 200
    assert 'data-state="filed"' in listing.text
    assert_csp_clean(listing.text)
    rid = listing.text.split('data-review-id="')[1].split('"')[0]
    page = client.get(f"/console/case-reviews/{rid}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text
    assert 'data-transition="accept"' in page.text
    token = csrf_from(page.text)
    illegal = client.post(
        f"/console/case-reviews/{rid}/transitions/uphold", data={"csrf_token": token, "reason": "r"}
    )
    assert illegal.status_code == 409
    assert 'data-error="409"' in illegal.text
    moved = client.post(
        f"/console/case-reviews/{rid}/transitions/accept", data={"csrf_token": token}
    )
    assert moved.status_code == 200
    assert 'data-state="accepted"' in moved.text


def test_portal_review_section_files_and_shows_stages(
    client: TestClient, make_actor: Any, city: City, open_case: OpenFn
) -> None:
    case = open_case(0)
    assert case.code is not None
    boss = make_actor("supervisor", city.stations[0])
    client.post(
        f"/api/cases/{case.id}/transitions/close", json={"reason": "x"}, headers=boss.headers
    )
    creds = {"number": case.number, "code": case.code}
    page = client.post("/portal", data=creds)
    assert 'data-form="reviews-show"' in page.text
    shown = client.post("/portal/review/lookup", data=creds)
    assert shown.status_code == 200
    assert 'data-form="review"' in shown.text
    filed = client.post("/portal/review", data={**creds, "grounds": SCRIPT})
    assert filed.status_code == 200, filed.text
    assert_no_canary(filed, where="/portal/review")
    assert "data-review-sent" in filed.text
    assert 'data-review-stage="filed"' in filed.text
    assert "data-due" in filed.text
    assert "script" not in filed.text.split("data-reviews")[1].split("</section>")[0]
    again = client.post("/portal/review", data={**creds, "grounds": "again"})
    assert again.status_code == 409
    assert 'data-review-error="409"' in again.text
    miss = client.post("/portal/review", data={**creds, "code": "ZZZZZZZZ", "grounds": "x"})
    plain_miss = client.post("/portal", data={**creds, "code": "ZZZZZZZZ"})
    assert miss.status_code == plain_miss.status_code == 404
    assert "data-miss" in miss.text
