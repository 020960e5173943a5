"""Browser test: the demo citizen applies for a no-criminal-record certificate (issue 10).

On a phone (390x844, zh-CN) the citizen opens the catalogue, signs in from the item's
start page, answers one question per page (name, ID number and phone come prefilled from
the registry), checks the answers and sends; the confirmation shows the reference number.
Department staff of the police station sign in to the console (with their one-time code),
find the application in the e-services queue, accept, approve and issue it. The citizen's
application page then shows the certificate's QR code: the test decodes the image on the
page (zxing-cpp) and finds the offline ``SC1:`` text the page states. No page logs a
console error (a CSP violation would).

Same harness as ``test_accidents_phone``: the real app under uvicorn on a free port, its
own SQLite file, Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

import safecity.models  # noqa: F401  (registers every table)
from safecity.app import create_app
from safecity.eservices import citizens, service
from safecity.eservices.models import Application
from safecity.orgs import service as orgs
from safecity.platform.db import Base, utcnow
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit, totp
from safecity.security import service as security
from safecity.settings import Settings
from tests.e2e.test_console_login import CHROMIUM, CHROMIUM_ARGS, _need_browser
from tests.live_server import serve

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
}


@dataclass
class Live:
    url: str
    runtime: Runtime
    staff: str
    staff_totp: str


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    _need_browser()
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'eservices.db'}",
        bus_url="memory://",
        key_dir=tmp_path / "keys",
        log_json=False,
        tile_url="",
    )
    runtime = build_runtime(settings)
    Base.metadata.create_all(runtime.engine)
    with runtime.sessions.begin() as s:
        city = orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
        person = security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username=citizens.DEMO_USERNAME,
            org_id=city.id,
            roles=["citizen"],
            password=PASSWORD,
        )
        citizens.seed_profile(s, user_id=person.user.id, profile=citizens.resident_profile())
        station = service.department_org(s, "psb-police-station")
        staff = security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username="police-desk",
            org_id=station.id,
            roles=["department_staff"],
            password=PASSWORD,
        )
    assert staff.totp_secret is not None
    try:
        with serve(create_app(runtime=runtime)) as url:
            yield Live(url, runtime, "police-desk", staff.totp_secret)
    finally:
        runtime.close()


def watch(page: Any, problems: list[str]) -> None:
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)


def go(page: Any, click: Any) -> None:
    """Click a link or button that navigates, and wait for the page it leads to."""
    with page.expect_navigation() as nav:
        click.click()
    response = nav.value
    assert response is not None
    assert response.status == 200, (response.url, response.status)


def apply_on_phone(page: Any) -> str:
    """The citizen's part up to the confirmation; returns the reference number."""
    page.goto("/services")
    go(page, page.locator('[data-item="no-criminal-record"] a').first)
    go(page, page.locator('[data-action="signin"]'))
    page.locator("#login-username").fill(citizens.DEMO_USERNAME)
    page.locator("#login-password").fill(PASSWORD)
    go(page, page.locator("form[data-form=login] button[type=submit]"))
    assert page.url.endswith("/services/no-criminal-record")
    go(page, page.locator('[data-action="start"]'))

    answers = {"where": "household", "purpose": "employment"}
    for _ in range(10):
        current = page.locator("main").get_attribute("data-page") or ""
        if current == "materials":
            go(page, page.locator('[data-action="continue"]'))
            continue
        if current == "check":
            break
        if current in answers:
            page.locator(f'input[type=radio][value="{answers[current]}"]').check()
        if current == "declaration":
            page.locator("input[name=declaration]").check()
        go(page, page.locator('[data-action="continue"]'))
    assert page.locator("main").get_attribute("data-page") == "check"
    assert "王小明" in page.locator('[data-answer="full_name"]').inner_text()
    go(page, page.locator('[data-action="submit"]'))
    reference = str(page.locator("[data-reference]").inner_text()).strip()
    assert re.fullmatch(r"YW-\d{4}-\d{2}-\d{2}-[0-9A-Z]{6}", reference), reference
    return reference


def decide_in_console(page: Any, live: Live, reference: str) -> None:
    page.goto("/console/login")
    page.locator("input[name=username]").fill(live.staff)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[name=totp_code]").fill(totp.code_at(live.staff_totp, utcnow()))
    go(page, page.locator("form button[type=submit]"))
    link = page.locator('a[data-domain="eservices"]')  # the console navigation has it
    assert link.get_attribute("href") == "/console/eservices"
    page.goto("/console/eservices")
    row = page.locator("tr[data-application]", has_text=reference)
    assert row.get_attribute("data-state") == "submitted"
    assert row.get_attribute("data-sla") in ("ok", "soon")
    go(page, row.locator("a").first)
    for action in ("accept", "approve", "issue"):
        go(page, page.locator(f'form[data-act="{action}"] button[type=submit]'))
    assert page.locator("[data-state-label]").first.inner_text().strip() == "已办结出证"


def test_citizen_applies_staff_issue_citizen_sees_the_qr(live: Live) -> None:
    import zxingcpp
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            phone = browser.new_context(base_url=live.url, **PHONE)
            citizen = phone.new_page()
            watch(citizen, problems)
            reference = apply_on_phone(citizen)

            desk = browser.new_context(
                base_url=live.url, locale="zh-CN", viewport={"width": 1280, "height": 900}
            )
            staff = desk.new_page()
            watch(staff, problems)
            decide_in_console(staff, live, reference)

            citizen.goto("/services/applications")
            card = citizen.locator("[data-application]", has_text=reference)
            assert card.get_attribute("data-state") == "issued"
            go(citizen, card.locator("a").first)
            qr = citizen.locator("img[data-qr]").first
            qr.scroll_into_view_if_needed()
            text = qr.get_attribute("data-qr-text") or ""
            assert text.startswith("SC1:")
            shot = Image.open(io.BytesIO(qr.screenshot()))
            decoded = [r.text for r in zxingcpp.read_barcodes(shot)]
            assert decoded == [text]
        finally:
            browser.close()

    assert problems == [], problems
    with live.runtime.sessions() as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        assert app.state == "issued"
        assert app.certificate_id is not None
    assert time.monotonic() - started < 60
