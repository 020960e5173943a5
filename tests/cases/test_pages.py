"""Console pages of cases (list, detail, transition, reply) and the public portal page."""

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


def test_officer_lists_moves_and_replies_in_the_console(
    client: TestClient, make_staff: Any, city: City, open_case: OpenFn
) -> None:
    case = open_case(0)
    theirs = open_case(2)
    log_in(client, make_staff("officer", city.stations[0]))
    listing = client.get("/console/cases")
    assert listing.status_code == 200
    assert case.number in listing.text
    assert theirs.number not in listing.text
    assert 'href="/console/cases"' in listing.text  # the nav entry
    assert_csp_clean(listing.text)
    page = client.get(f"/console/cases/{case.id}")
    assert page.status_code == 200
    assert 'data-transition="investigate"' in page.text
    assert_csp_clean(page.text)
    token = csrf_from(page.text)
    url = f"/console/cases/{case.id}"
    illegal = client.post(f"{url}/transitions/solve", data={"csrf_token": token})
    assert illegal.status_code in (403, 409)
    moved = client.post(f"{url}/transitions/investigate", data={"csrf_token": token})
    assert moved.status_code == 200
    assert 'data-state="investigating"' in moved.text
    again = client.post(f"{url}/transitions/investigate", data={"csrf_token": token})
    assert again.status_code == 409
    assert 'data-error="409"' in again.text
    replied = client.post(f"{url}/replies", data={"csrf_token": token, "text": "on our way"})
    assert replied.status_code == 200
    assert "on our way" in replied.text
    assert client.get(f"/console/cases/{theirs.id}").status_code == 404
    assert (
        client.post(
            f"/console/cases/{theirs.id}/replies", data={"csrf_token": token, "text": "x"}
        ).status_code
        == 404
    )
    portal = client.post("/portal", data={"number": case.number, "code": case.code})
    assert "on our way" in portal.text
    assert 'data-stage="investigating"' in portal.text


def test_portal_page_is_bilingual_and_has_labels(client: TestClient) -> None:
    zh = client.get("/portal", headers={"Accept-Language": "zh-CN"})
    en = client.get("/portal", headers={"Accept-Language": "en"})
    assert zh.status_code == en.status_code == 200
    assert "案件编号" in zh.text
    assert "Case number" in en.text
    for page in (zh, en):
        assert 'name="viewport"' in page.text
        assert page.text.count('<label class="form__field">') == 2
        assert "https://" not in page.text.split("<body", 1)[0]  # no CDN assets
        assert_csp_clean(page.text)
        assert_no_canary(page)
