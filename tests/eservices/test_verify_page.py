"""The public /verify page: camera + image scanning in the browser, text-box fallback."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from safecity.eservices import registry
from safecity.platform.db import utcnow
from safecity.platform.runtime import Runtime
from tests.eservices.registry_fixtures import People, issue, people, principal

__all__ = ["people"]


def test_page_loads_in_both_languages_with_the_vendored_decoder(client: TestClient) -> None:
    en = client.get("/verify", headers={"Accept-Language": "en"})
    assert en.status_code == 200
    assert "Verify an e-certificate" in en.text
    assert "camera=(self)" in en.headers["permissions-policy"]
    assert "/console/static/vendor/jsqr/jsQR.js" in en.text
    assert 'action="/verify"' in en.text  # the no-JS form
    assert "<script>" not in en.text  # the CSP allows no inline script
    zh = client.get("/verify", headers={"Accept-Language": "zh-CN"})
    assert "电子证照核验" in zh.text
    for path in re.findall(r'src="(/console/static/[^"]+)"', en.text):
        assert client.get(path).status_code == 200, path
    assert client.get("/console/static/vendor/jsqr/LICENSE").status_code == 200


def test_text_box_fallback_shows_the_verdict_and_profile_claims(
    runtime: Runtime, client: TestClient, people: People
) -> None:
    cert = issue(runtime, people, now=utcnow())
    with runtime.sessions.begin() as s:
        qr = registry.certificate_qr(
            session=s, principal=principal(s, people.citizen), certificate_id=cert.id
        )
    page = client.post("/verify", data={"text": qr}, headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert 'data-status="VALID"' in page.text
    assert "小明" in page.text
    assert "1234" in page.text
    assert "310101199005171234" not in page.text  # the hotel profile shows the last 4 only
    with runtime.sessions.begin() as s:
        registry.revoke(
            session=s,
            principal=principal(s, people.supervisor),
            certificate_id=cert.id,
            reason="withdrawn: private note",
            code="withdrawn_by_authority",
        )
    revoked = client.post("/verify", data={"text": qr}, headers={"Accept-Language": "zh"})
    assert 'data-status="REVOKED"' in revoked.text
    assert "已撤销" in revoked.text
    assert "withdrawn_by_authority" in revoked.text  # the published code
    assert "private note" not in revoked.text


def test_garbage_and_oversized_text_get_a_clear_answer(client: TestClient) -> None:
    junk = client.post("/verify", data={"text": "not a certificate"})
    assert junk.status_code == 200
    assert 'data-status="INVALID"' in junk.text
    big = client.post("/verify", data={"text": "x" * 20_000})
    assert big.status_code == 422
