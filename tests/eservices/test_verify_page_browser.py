"""Browser test of /verify: a picked QR image is decoded in the page (vendored jsQR) and
verified; a picture without a QR, a non-image file and a revoked certificate get clear
answers; no console error (a CSP violation would show as one).

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

import safecity.models  # noqa: F401  (registers every table)
from safecity.app import create_app
from safecity.eservices import registry
from safecity.eservices.credentials import qr_png
from safecity.platform.db import Base
from safecity.platform.runtime import build_runtime
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.settings import Settings
from tests.e2e.test_console_login import CHROMIUM, CHROMIUM_ARGS, _need_browser
from tests.eservices.registry_fixtures import CLAIMS
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
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'verify.db'}",
        bus_url="memory://",
        key_dir=tmp_path / "keys",
        log_json=False,
    )
    runtime = build_runtime(settings)
    Base.metadata.create_all(runtime.engine)
    with runtime.sessions.begin() as s:
        cert = registry.issue_for_application(
            session=s,
            principal=audit.SYSTEM,
            application_id="browser-1",
            item_code="no-criminal-record",
            holder_user_id=HOLDER.id,
            claims=CLAIMS,
            org_id=None,
        )
        qr = registry.certificate_qr(session=s, principal=HOLDER, certificate_id=cert.id)
    files = {
        "qr": tmp_path / "qr.png",
        "blank": tmp_path / "blank.png",
        "text": tmp_path / "notes.txt",
    }
    files["qr"].write_bytes(qr_png(qr, scale=6))
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(buf, format="PNG")
    files["blank"].write_bytes(buf.getvalue())
    files["text"].write_text("not an image")
    try:
        with serve(create_app(runtime=runtime)) as url:
            yield {"url": url, "runtime": runtime, "cert": cert.id, "files": files}
    finally:
        runtime.close()


def test_pick_an_image_decode_in_the_browser_and_verify(live: dict[str, Any]) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_context(locale="en-US").new_page()
            page.set_default_timeout(15_000)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.goto(f"{live['url']}/verify")
            files = live["files"]
            page.set_input_files("#qr-file", str(files["qr"]))
            verdict = page.locator("#verdict .verdict")
            expect(verdict).to_have_attribute("data-status", "VALID")
            expect(verdict).to_contain_text("1234")
            assert "310101199005171234" not in page.content()

            page.set_input_files("#qr-file", str(files["blank"]))
            expect(page.locator("#scan-message")).to_contain_text("No QR code found")
            page.set_input_files("#qr-file", str(files["text"]))
            expect(page.locator("#scan-message")).to_contain_text("not an image")

            with live["runtime"].sessions.begin() as s:
                registry.revoke(
                    session=s,
                    principal=audit.SYSTEM,
                    certificate_id=live["cert"],
                    reason="private note: withdrawn",
                    code="withdrawn_by_authority",
                )
            page.set_input_files("#qr-file", str(files["qr"]))
            expect(verdict).to_have_attribute("data-status", "REVOKED")
            expect(verdict).to_contain_text("withdrawn_by_authority")  # the published code
            expect(verdict).not_to_contain_text("private note")
        finally:
            browser.close()
    assert problems == []
