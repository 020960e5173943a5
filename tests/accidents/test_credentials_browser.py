"""Browser test of "fill from my e-driving licence": a picked photo of the licence QR is
decoded on the driver's page (vendored jsQR, static/console/accidents_credential.js),
posted and verified; the licence number is filled and marked verified; a picture without
a QR gets a clear message; no console error (a CSP violation would show as one).

The real app under uvicorn on a free port, its own SQLite file, Debian's Chromium driven
by Playwright (the camera is replaced by picking an image file).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from safecity.accidents.models import AccidentParty
from safecity.eservices import registry
from safecity.eservices.credentials import qr_png
from safecity.security import audit
from safecity.security.rbac import Principal
from tests.accidents.test_credentials import LICENCE_CLAIMS, LICENCE_NO
from tests.e2e.test_accidents_phone import PHONE, make_runtime
from tests.e2e.test_console_login import CHROMIUM, CHROMIUM_ARGS, _need_browser
from tests.live_server import serve

pytestmark = pytest.mark.e2e

HOLDER = Principal(
    id="citizen0000001",
    kind="user",
    username="holder",
    roles=frozenset({"citizen"}),
    org_id="",
    visible_org_ids=frozenset(),
)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    _need_browser()
    from safecity.app import create_app

    runtime = make_runtime(tmp_path)
    with runtime.sessions.begin() as s:
        cert = registry.issue_for_application(
            session=s,
            principal=audit.SYSTEM,
            application_id="licence-1",
            item_code="driving-licence-renewal",
            holder_user_id=HOLDER.id,
            claims=LICENCE_CLAIMS,
            org_id=None,
        )
        qr = registry.certificate_qr(
            session=s, principal=HOLDER, certificate_id=cert.id, profile="roadside-police"
        )
    files = {"qr": tmp_path / "licence-qr.png", "blank": tmp_path / "blank.png"}
    files["qr"].write_bytes(qr_png(qr, scale=6))
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(buf, format="PNG")
    files["blank"].write_bytes(buf.getvalue())
    try:
        with serve(create_app(runtime=runtime)) as url:
            yield {"url": url, "runtime": runtime, "files": files}
    finally:
        runtime.close()


def test_pick_the_licence_qr_and_the_licence_number_is_filled(live: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(base_url=live["url"], **{**PHONE, "locale": "en-US"})
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto("/accidents")
            form = page.locator("form[data-form=open]")
            for box in form.locator("input[value=yes]").all():
                box.check()
            form.locator("button[type=submit]").click()
            page.wait_for_selector("[data-credentials]")
            licence = page.locator("form[data-credential=licence]")
            expect(licence.locator("[data-scan]")).to_be_visible()  # JS woke the scan buttons

            licence.locator("[data-pick]").set_input_files(str(live["files"]["blank"]))
            expect(page.locator("[data-scan-message]")).to_contain_text("No QR code found")

            licence.locator("[data-pick]").set_input_files(str(live["files"]["qr"]))
            expect(page.locator('[data-verified-field="licence_no"]')).to_be_visible()
            expect(page.locator("input[name=licence_no]")).to_have_value(LICENCE_NO)
            expect(page.locator("[data-holder-name]")).to_have_text("王小明")
        finally:
            browser.close()
    assert problems == []
    with live["runtime"].sessions() as s:
        row = s.scalars(select(AccidentParty)).one()
    assert row.field_sources["licence_no"]["source"] == "credential"
