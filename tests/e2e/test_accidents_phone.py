"""Browser test: two drivers settle a rear-end collision on their phones (issue 11).

Two Chromium contexts (two phones, 390x844, touch, zh-CN): driver A opens a case and
reads the join code off the page, driver B joins with it; A photographs the five
positions (small generated JPEGs), both confirm the road is cleared, enter their data
and accounts (B ran into the back of A), each asks for a one-time code (read back from
the notification outbox, where the log sender leaves it) and signs. Both then see the
sealed agreement with the liability B 100 %, and the database has the case ``notified``
with both insurer notices acknowledged once.

:func:`settle` is also the script of ``benchmarks/accidents_browser.py``: it records,
for every step, the server time of each document request it made (Playwright's resource
timing, ``responseStart - requestStart``) and the wall time of the step.

Same harness as ``test_portal``: the real app under uvicorn on a free port, its own
SQLite file, Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select

import safecity.models  # noqa: F401  (registers every table)
from safecity.accidents.models import POSITIONS, AccidentCase, AccidentParty, InsurerNotice
from safecity.accidents.schemas import ELIGIBILITY
from safecity.app import create_app
from safecity.orgs import service as orgs
from safecity.platform.db import Base
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime, build_runtime
from safecity.settings import Settings
from tests.e2e.test_console_login import CHROMIUM, CHROMIUM_ARGS, _need_browser
from tests.live_server import serve

pytestmark = pytest.mark.e2e

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
}
#: (plate, insurer, own situations, other's situations, phone) — B ran into the back of A.
DRIVERS = {
    "A": ("沪A12345", "demo_pingan", ["stationary"], ["rear_ending"], "13900000001"),
    "B": ("沪B54321", "demo_cpic", ["rear_ending"], ["stationary"], "13900000002"),
}


def jpeg(seed: int, size: int = 96) -> bytes:
    """A small random JPEG, different for every seed (no duplicate-photo flags)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def make_runtime(root: Path) -> Runtime:
    """A runtime on its own SQLite file with a city (every accident falls back to it)."""
    settings = Settings(
        var_dir=root / "var",
        database_url=f"sqlite:///{root / 'phones.db'}",
        bus_url="memory://",
        key_dir=root / "keys",
        log_json=False,
        tile_url="",
    )
    runtime = build_runtime(settings)
    Base.metadata.create_all(runtime.engine)
    with runtime.sessions.begin() as s:
        orgs.create(session=s, code="sh", kind="city", name_zh="上海市", name_en="Shanghai")
    return runtime


def otp_for(runtime: Runtime, ref: str, role: str) -> str:
    """The last code sent to ``role`` of case ``ref`` (as ``accidents.demo._otp`` reads it)."""
    with runtime.sessions() as s:
        party = s.scalars(
            select(AccidentParty)
            .join(AccidentCase, AccidentCase.id == AccidentParty.case_id)
            .where(AccidentCase.ref == ref, AccidentParty.role == role)
        ).one()
        body = s.scalar(
            select(Notification.body).where(
                Notification.idempotency_key == f"accidents:{party.id}:otp:{party.otp_sent}"
            )
        )
    found = re.search(r"code (\d{6})", body or "")
    assert found, f"no signing code was enqueued for driver {role}"
    return found.group(1)


@dataclass
class Step:
    """One user action: its wall time and the server time of each document request."""

    name: str
    role: str
    wall_ms: float
    server_ms: list[float] = field(default_factory=list)


@dataclass
class Settled:
    ref: str
    steps: list[Step]
    pages: dict[str, str]  # role → the final page's HTML


class Phone:
    """One driver's browser context; every ``act`` is one form submission, timed."""

    def __init__(self, browser: Any, url: str, role: str, headers: dict[str, str]) -> None:
        self.context = browser.new_context(base_url=url, extra_http_headers=headers, **PHONE)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.role = role
        self.problems: list[str] = []
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))
        self.page.on(
            "console", lambda m: self.problems.append(m.text) if m.type == "error" else None
        )

    def act(self, steps: list[Step], name: str, submit: Any) -> None:
        """Click ``submit`` (a locator) and wait for the page it leads to (after a 303)."""
        started = time.perf_counter()
        with self.page.expect_navigation() as nav:
            submit.click()
        response = nav.value
        assert response is not None, name
        assert response.status == 200, (name, response.status)
        wall = (time.perf_counter() - started) * 1000
        chain, request = [], response.request
        while request is not None:  # the POST and the page it redirected to
            chain.append(request)
            request = request.redirected_from
        server = []
        for r in reversed(chain):
            timing = r.timing
            if timing["responseStart"] >= 0 and timing["requestStart"] >= 0:
                server.append(timing["responseStart"] - timing["requestStart"])
        steps.append(Step(name, self.role, wall, server))

    def reload(self, steps: list[Step], name: str) -> None:
        """Reload the page (a phone refreshing to see what the other driver did), timed."""
        started = time.perf_counter()
        response = self.page.reload()
        assert response is not None, name
        assert response.status == 200, (name, response.status)
        timing = response.request.timing
        server = [timing["responseStart"] - timing["requestStart"]]
        steps.append(Step(name, self.role, (time.perf_counter() - started) * 1000, server))

    def close(self) -> None:
        self.context.close()


def settle(
    browser: Any,
    url: str,
    runtime: Runtime,
    *,
    seed: int = 1,
    client: int = 1,
    photos: list[bytes] | None = None,
) -> Settled:
    """Both drivers settle one rear-end collision in the browser, up to both signatures
    (``photos``: the five JPEGs A uploads; small generated ones by default).

    ``client`` gives each phone its own address (``X-Forwarded-For``, honoured by uvicorn
    from 127.0.0.1) so that repeated runs do not share one rate-limit bucket.
    """
    steps: list[Step] = []
    a = Phone(browser, url, "A", {"X-Forwarded-For": f"10.9.{client % 250}.1"})
    b = Phone(browser, url, "B", {"X-Forwarded-For": f"10.9.{client % 250}.2"})
    try:
        started = time.perf_counter()
        a.page.goto("/accidents")
        b.page.goto("/accidents/join")  # B gets the join page ready while A reads the list
        form = a.page.locator("form[data-form=open]")
        for item in ELIGIBILITY:
            form.locator(f"input[name={item}][value=yes]").check()
        a.act(steps, "open", form.locator("button[type=submit]"))
        ref = a.page.locator("main").get_attribute("data-case-ref") or ""
        code = a.page.locator("[data-join-code]").inner_text().strip()
        assert re.fullmatch(r"SH[A-Z0-9]{8}", ref), ref
        assert code, "no join code on A's page"

        b.page.locator("form[data-form=join] input[name=code]").fill(code)
        b.act(steps, "join", b.page.locator("form[data-form=join] button[type=submit]"))
        assert b.page.locator("main").get_attribute("data-role") == "B"

        shots = photos or [jpeg(seed + i) for i in range(len(POSITIONS))]
        for i, position in enumerate(POSITIONS):
            photo = a.page.locator(f"form[data-photo={position}]")
            photo.locator("input[type=file]").set_input_files(
                {"name": f"{position}.jpg", "mimeType": "image/jpeg", "buffer": shots[i]}
            )
            a.act(steps, "photo", photo.locator("button[type=submit]"))

        for phone in (a, b):
            plate, insurer, own, other, tel = DRIVERS[phone.role]
            road = phone.page.locator("[data-road] button[type=submit]")
            phone.act(steps, "road_cleared", road)
            data = phone.page.locator("form[data-form=data]")
            data.locator("input[name=plate]").fill(plate)
            data.locator("input[name=licence_no]").fill(f"31010119900101{seed % 10}23X")
            data.locator("select[name=insurer_code]").select_option(insurer)
            data.locator("input[name=policy_no]").fill(f"PDAA2026{phone.role}{seed:04d}")
            data.locator("input[name=phone]").fill(tel)
            phone.act(steps, "data", data.locator("button[type=submit]"))
            declaration = phone.page.locator("form[data-form=declaration]")
            for name, codes in (("own", own), ("other", other)):
                for situation in codes:
                    declaration.locator(f"input[name={name}][value={situation}]").check()
            phone.act(steps, "declaration", declaration.locator("button[type=submit]"))

        for phone in (a, b):  # each refreshes to read the decision once both declared
            phone.reload(steps, "decision")
            assert phone.page.locator("[data-verdict]").count() == 1, phone.role
            sign = phone.page.locator("[data-sign]")
            phone.act(steps, "otp", sign.locator("form[action$='/otp'] button"))
            sign = phone.page.locator("[data-sign]")
            sign.locator("input[name=code]").fill(otp_for(runtime, ref, phone.role))
            last = "sign_second" if phone.role == "B" else "sign_first"
            phone.act(steps, last, sign.locator("form[action$='/sign'] button"))
        steps.append(Step("flow_total", "", (time.perf_counter() - started) * 1000))
        a.reload(steps, "sealed")
        deadline = time.monotonic() + 10  # the notices go out right after B's response
        while a.page.locator('[data-notice="acked"]').count() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            a.page.reload()
        pages = {"A": a.page.content(), "B": b.page.content()}
        problems = a.problems + b.problems
        assert problems == [], problems
        return Settled(ref, steps, pages)
    finally:
        a.close()
        b.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Runtime]]:
    _need_browser()
    runtime = make_runtime(tmp_path)
    try:
        with serve(create_app(runtime=runtime)) as url:
            yield url, runtime
    finally:
        runtime.close()


def test_two_phones_settle_a_rear_end(live: tuple[str, Runtime]) -> None:
    from playwright.sync_api import sync_playwright

    url, runtime = live
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            done = settle(browser, url, runtime)
        finally:
            browser.close()

    for role, html in done.pages.items():
        assert 'data-verdict="' in html, role
        shares = re.search(r"<p data-shares[^>]*>([^<]*)</p>", html)
        assert shares, role
        assert shares.group(1) == "驾驶人A承担0%，驾驶人B承担100%", (role, shares)
        assert 'data-rule="rear_end"' in html, role
        assert "data-sealed=" in html, role
    assert "data-sign=" not in done.pages["A"]  # nothing left to sign
    assert done.pages["A"].count('data-notice="acked"') == 2

    with runtime.sessions() as s:
        case = s.scalars(select(AccidentCase).where(AccidentCase.ref == done.ref)).one()
        assert case.state == "notified"
        assert case.liability is not None
        assert (case.liability["share_a"], case.liability["share_b"]) == (0, 100)
        assert case.t1_road_cleared_at is not None
        assert case.t2_signed_at is not None
        assert case.t3_insurer_ack_at is not None
        notices = s.scalars(
            select(InsurerNotice)
            .where(InsurerNotice.case_id == case.id)
            .order_by(InsurerNotice.party_role)
        ).all()
        assert [(n.insurer_code, n.status, n.acks) for n in notices] == [
            ("demo_pingan", "acked", 1),
            ("demo_cpic", "acked", 1),
        ]
    names = [s.name for s in done.steps]
    assert names.count("photo") == len(POSITIONS)
    assert all(s.server_ms for s in done.steps if s.name != "flow_total"), "no server timing"
