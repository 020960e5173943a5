"""Browser test: an officer opens the live alert queue, sees a row and a map marker, and
a newly raised alert appears in both without reloading (Server-Sent Events).

Same harness as ``test_console_login``: the real app under uvicorn on a free port, its own
SQLite file, Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest

import safecity.models  # noqa: F401  (registers every table)
from safecity.alerts import service as alerts
from safecity.app import create_app
from safecity.orgs import service as orgs
from safecity.platform.db import Base, utcnow
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit
from safecity.security import service as security
from safecity.settings import Settings
from tests.e2e.test_console_login import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    SCREENSHOT,
    _need_browser,
)
from tests.live_server import serve

pytestmark = pytest.mark.e2e


def _box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


@dataclass
class LiveQueue:
    url: str
    runtime: Runtime
    username: str
    totp_secret: str


@pytest.fixture
def live_queue(tmp_path: Path) -> Iterator[LiveQueue]:
    _need_browser()
    settings = Settings(
        var_dir=tmp_path / "var",
        database_url=f"sqlite:///{tmp_path / 'e2e.db'}",
        bus_url="memory://",
        key_dir=tmp_path / "keys",
        log_json=False,
        tile_url="",
    )
    runtime = build_runtime(settings)
    Base.metadata.create_all(runtime.engine)
    with runtime.sessions.begin() as s:
        root = orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
        district = orgs.create(
            session=s,
            code="hp",
            kind="district",
            name_zh="黄浦区",
            name_en="Huangpu",
            parent_id=root.id,
            area=_box(121.46, 31.20, 121.51, 31.25),
        )
        station = orgs.create(
            session=s,
            code="hp-s1",
            kind="station",
            name_zh="外滩派出所",
            name_en="Bund station",
            parent_id=district.id,
            area=_box(121.47, 31.22, 121.50, 31.24),
        )
        officer = security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username="officer",
            org_id=station.id,
            roles=["officer"],
            password=PASSWORD,
        )
        _raise(s, key="first", severity="high", lat=31.23, lng=121.48)
    assert officer.totp_secret is not None

    try:
        with serve(create_app(runtime=runtime)) as url:
            yield LiveQueue(
                url=url, runtime=runtime, username="officer", totp_secret=officer.totp_secret
            )
    finally:
        runtime.close()


def _raise(session: Any, *, key: str, severity: str, lat: float, lng: float) -> str:
    alert = alerts.raise_alert(
        session,
        source="tests",
        category="smoke",
        severity=severity,
        title_key="alerts.smoke_dense",
        lat=lat,
        lng=lng,
        dedup_key=key,
        occurred_at=utcnow(),
    )
    return alert.id


def test_officer_sees_the_queue_and_a_new_alert_arrives_live(live_queue: LiveQueue) -> None:
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

            page.goto(f"{live_queue.url}/console/login?next=/console/alerts")
            page.fill("input[name=username]", live_queue.username)
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=totp_code]", pyotp.TOTP(live_queue.totp_secret).now())
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_queue.url}/console/alerts")

            page.wait_for_selector("#alert-map[data-state=ready]")
            assert page.locator("#aq-rows tr").count() == 1
            assert page.locator("#alert-map path.alert-marker--high").count() == 1
            page.wait_for_selector("#aq-status[data-state=live]")

            with live_queue.runtime.sessions.begin() as s:
                new_id = _raise(s, key="second", severity="critical", lat=31.225, lng=121.49)
            page.wait_for_selector(f"#row-{new_id}")
            page.wait_for_selector("#alert-map path.alert-marker--critical")
            assert page.locator("#aq-rows tr").count() == 2
            # Critical sorts above high.
            assert page.locator("#aq-rows tr").first.get_attribute("id") == f"row-{new_id}"
            assert page.locator("#alert-map").get_attribute("data-markers") == "2"
            page.screenshot(path=str(SCREENSHOT.with_name("console-alerts.png")), full_page=True)

            # A marker opens the alert's page, with its timeline.
            page.locator("#alert-map path.alert-marker--critical").click()
            page.wait_for_url(f"{live_queue.url}/console/alerts/{new_id}")
            page.wait_for_selector("[data-timeline] [data-kind=created]")
            assert page.locator("button[data-action=acknowledge]").count() == 1
        finally:
            browser.close()
    csp = [m for m in problems if "Content Security Policy" in m or "Refused to" in m]
    assert csp == [], csp
    assert problems == []
