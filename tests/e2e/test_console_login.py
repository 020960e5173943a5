"""Browser test: the admin logs in with a TOTP code and sees the city map's districts.

The real app runs under uvicorn on a free port (in a thread) against its own SQLite file;
Playwright drives Debian's Chromium (``/usr/bin/chromium``; no browser is downloaded).
With ``CI=true`` a missing browser fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

import safecity.models  # noqa: F401  (registers every table)
from safecity.app import create_app
from safecity.orgs import service as orgs
from safecity.platform.db import Base
from safecity.platform.runtime import build_runtime
from safecity.security import audit
from safecity.security import service as security
from safecity.settings import Settings
from tests.live_server import serve

pytestmark = pytest.mark.e2e

CHROMIUM = Path(os.environ.get("SAFECITY_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
IN_CI = os.environ.get("CI", "").lower() == "true"
SCREENSHOT = Path(
    os.environ.get("SAFECITY_E2E_SCREENSHOT", Path(tempfile.gettempdir()) / "console.png")
)
PASSWORD = "e2e-browser-login-2024"
DISTRICTS = (
    ("huangpu", "黄浦区", "Huangpu", (121.46, 31.20, 121.51, 31.25)),
    ("xuhui", "徐汇区", "Xuhui", (121.40, 31.14, 121.46, 31.21)),
    ("pudong", "浦东新区", "Pudong", (121.51, 31.15, 121.62, 31.26)),
)


def _box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _need_browser() -> None:
    reason = ""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed"
    if reason:
        if IN_CI:
            pytest.fail(f"browser test cannot run: {reason} — required when CI=true")
        pytest.skip(f"browser test skipped: {reason}")


@dataclass
class LiveApp:
    url: str
    username: str
    totp_secret: str


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[LiveApp]:
    _need_browser()
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        bus_url="memory://",
        key_dir=tmp_path / "keys",
        log_json=False,
        tile_url="",  # no tile server: outlines on a plain background
    )
    runtime = build_runtime(settings)
    Base.metadata.create_all(runtime.engine)
    with runtime.sessions.begin() as s:
        root = orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
        for code, zh, en, box in DISTRICTS:
            orgs.create(
                session=s,
                code=code,
                kind="district",
                name_zh=zh,
                name_en=en,
                parent_id=root.id,
                area=_box(*box),
                area_synthetic=True,
            )
        admin = security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username="admin",
            org_id=root.id,
            roles=["admin"],
            password=PASSWORD,
        )
    assert admin.totp_secret is not None

    try:
        with serve(create_app(runtime=runtime)) as url:
            yield LiveApp(url=url, username="admin", totp_secret=admin.totp_secret)
    finally:
        runtime.close()


def test_admin_logs_in_with_totp_and_sees_district_outlines(live_app: LiveApp) -> None:
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(locale="en-US", viewport={"width": 1440, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(str(e)))

            # Logged out: the console sends the browser to the login page.
            page.goto(f"{live_app.url}/")
            page.wait_for_url("**/console/login*")
            assert page.locator("h1").inner_text() == "Staff sign-in"

            # A wrong password is reported in the page, translated, not as JSON.
            page.fill("input[name=username]", live_app.username)
            page.fill("input[name=password]", "not-the-password")
            page.fill("input[name=totp_code]", "000000")
            page.click("button[type=submit]")
            alert = page.locator("[role=alert]")
            assert alert.inner_text() == "Wrong username, password or authenticator code."
            page.screenshot(path=str(SCREENSHOT.with_name("console-login.png")))

            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=totp_code]", pyotp.TOTP(live_app.totp_secret).now())
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_app.url}/console")

            # The map draws one Leaflet path per district, from the orgs GeoJSON endpoint.
            page.wait_for_selector("#city-map[data-state=ready]")
            outlines = page.locator("#city-map path.org-area--district")
            assert outlines.count() == len(DISTRICTS)
            assert page.locator("#city-map path.org-area--synthetic").count() == len(DISTRICTS)
            assert page.locator("#city-map .leaflet-tile").count() == 0  # no tile server
            box = page.locator("#city-map").bounding_box()
            assert box is not None
            assert box["height"] > 300  # the stylesheet (same origin) was applied

            # Shell: navigation with the coming domains, the user menu, the status panel.
            assert page.locator("[data-domain]").count() == 9
            assert page.locator("[data-username]").inner_text() == live_app.username
            page.wait_for_selector("#platform-status [data-status]")
            page.mouse.move(10, 10)
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            # Administration: the Organisations page shows the tree and the import form.
            page.click("a[data-nav=orgs]")
            page.wait_for_url(f"{live_app.url}/console/orgs")
            page.wait_for_selector("[data-org-tree]")
            districts = page.locator("[data-org-tree] [data-kind=district]")
            assert districts.count() == len(DISTRICTS)
            for code, _zh, en, _box in DISTRICTS:
                assert en in page.locator(f"[data-org={code}]").inner_text()
            assert page.locator("form[data-form=org-import] input[type=file]").count() == 1
            page.screenshot(path=str(SCREENSHOT.with_name("console-orgs.png")), full_page=True)
            page.click("a.nav__item[href='/console']")
            page.wait_for_selector("#city-map[data-state=ready]")

            # Language switch and logout work in the browser too.
            page.click(".lang-switch a[data-lang=zh]")
            page.wait_for_selector("h1:has-text('城市总览')")
            page.wait_for_selector("#city-map[data-state=ready]")
            page.click("details.user-menu summary")
            page.click("button[data-action=logout]")
            page.wait_for_url("**/console/login?signed_out=1")
        finally:
            browser.close()
    csp = [m for m in problems if "Content Security Policy" in m or "Refused to" in m]
    assert csp == [], csp
    expected = "status of 401"  # the deliberately wrong password above
    assert [m for m in problems if expected not in m] == []
