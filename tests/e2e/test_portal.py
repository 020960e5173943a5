"""Browser test: a citizen follows a case on the public portal (阳光警务).

A case is opened through the cases service (victim = this run's canaries, a public note,
an internal note), registered and put under investigation; then Chromium opens
``/portal``, looks the case up by number + code and sees the redacted timeline (stages
with dates, handling unit, public note), never the internal note nor any canary. A wrong
code and an unknown number give the very same page; switching to English works; the
comment form submits and says comments are published after review.

Same harness as ``test_console_login``: the real app under uvicorn on a free port, its own
SQLite file, Debian's Chromium driven by Playwright.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from sqlalchemy import select

import safecity.models  # noqa: F401  (registers every table)
from safecity.app import create_app
from safecity.cases import service as cases
from safecity.cases.models import Case, CaseComment
from safecity.cases.schemas import PersonIn
from safecity.console.i18n import LANG_COOKIE
from safecity.orgs import service as orgs
from safecity.platform.db import Base
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit
from safecity.settings import Settings
from tests.cases.conftest import code_sent
from tests.e2e.test_console_login import CHROMIUM, CHROMIUM_ARGS, SCREENSHOT, _need_browser
from tests.live_server import serve
from tests.publicguard import CANARIES, find_canaries

pytestmark = pytest.mark.e2e

PUBLIC_NOTE = "现场已勘查，调取监控中"
INTERNAL_NOTE = f"内部：嫌疑人线索 {CANARIES.name} {CANARIES.phone} internal-only-7Q"
COMMENT = "请尽快处理，谢谢 browser-comment-3K"


@dataclass
class LivePortal:
    url: str
    runtime: Runtime
    case_id: str
    number: str
    code: str


def _unknown_number(number: str) -> str:
    """A well-formed case number that differs from ``number`` (so it is on no case)."""
    return number[:-1] + ("2" if number[-1] != "2" else "3")


@pytest.fixture(scope="module")
def live_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    _need_browser()
    tmp_path = tmp_path_factory.mktemp("portal")
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
        )
        station = orgs.create(
            session=s,
            code="hp-s1",
            kind="station",
            name_zh="外滩派出所",
            name_en="Bund station",
            parent_id=district.id,
        )
        victim = PersonIn(
            role="victim",
            name=CANARIES.name,
            phone=CANARIES.phone,
            id_number=CANARIES.id_number,
            address=CANARIES.flat,
        )
        case = cases.open_case(
            s,
            principal=audit.SYSTEM,
            source="report",
            case_type="theft",
            org_id=station.id,
            summary=f"电动车在{CANARIES.flat}楼下被盗",
            address=CANARIES.flat,
            persons=[victim],
        )
        cases.transition(session=s, principal=audit.SYSTEM, case_id=case.id, name="register")
        cases.add_note(
            session=s, principal=audit.SYSTEM, case_id=case.id, text=PUBLIC_NOTE, public=True
        )
        cases.add_note(
            session=s, principal=audit.SYSTEM, case_id=case.id, text=INTERNAL_NOTE, public=False
        )
        cases.transition(session=s, principal=audit.SYSTEM, case_id=case.id, name="investigate")
        case_id, number = case.id, case.number
    code = code_sent(runtime, case_id)
    assert code is not None, "registering a disclosed case must send the portal code"

    try:
        with serve(create_app(runtime=runtime)) as url:
            yield LivePortal(url=url, runtime=runtime, case_id=case_id, number=number, code=code)
    finally:
        runtime.close()


def _lookup(page: Any, number: str, code: str) -> int:
    """Submit the lookup form; the HTTP status of the answer."""
    form = page.locator("form[data-form=lookup]")
    form.locator("input[name=number]").fill(number)
    form.locator("input[name=code]").fill(code)
    with page.expect_navigation() as nav:
        form.locator("button[type=submit]").click()
    response = nav.value
    assert response is not None
    return int(response.status)


def _no_canary(page: Any, where: str) -> None:
    found = find_canaries(page.content())
    assert found == [], f"personal data on {where}: {found}"


def test_citizen_follows_a_case_on_the_portal(live_portal: LivePortal) -> None:
    from playwright.sync_api import sync_playwright

    live = live_portal
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
            page = context.new_page()
            page.set_default_timeout(15_000)
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(str(e)))

            # The empty page, in Chinese (the browser's language).
            page.goto(f"{live.url}/portal")
            assert page.locator("h1").inner_text() == "阳光警务：案件查询"
            _no_canary(page, "GET /portal")

            # Lookup (lower case and dashes are accepted): the redacted public timeline.
            typed = f"{live.number[:6]}-{live.number[6:]}".lower()
            assert _lookup(page, typed, live.code.lower()) == 200
            card = page.locator("[data-case]")
            assert card.locator("[data-number]").inner_text() == live.number
            assert card.locator("[data-stage]").get_attribute("data-stage") == "investigating"
            assert card.locator("[data-stage]").inner_text() == "侦查中"
            assert card.locator("[data-unit]").inner_text() == "外滩派出所"
            stages = card.locator("[data-timeline] li[data-kind=stage] strong").all_inner_texts()
            assert stages == ["已受理", "已立案", "侦查中"]
            notes = card.locator("[data-timeline] li[data-kind=note]").all_inner_texts()
            assert len(notes) == 1
            assert PUBLIC_NOTE in notes[0]
            with live.runtime.sessions.begin() as s:
                row = s.get(Case, live.case_id)
                assert row is not None
                opened = row.created_at.date().isoformat()
            dates = card.locator("[data-timeline] time").evaluate_all(
                "ts => ts.map(t => t.getAttribute('datetime'))"
            )
            assert len(dates) == 4
            assert all(d.startswith(opened) for d in dates), dates
            text = page.content()
            assert "internal-only-7Q" not in text
            assert "内部" not in text
            _no_canary(page, "the case page")
            page.screenshot(path=str(SCREENSHOT.with_name("portal-case.png")), full_page=True)

            # Wrong code for a real number and an unknown number: the very same page.
            wrong = "ZZZZZZZZ" if live.code != "ZZZZZZZZ" else "YYYYYYYY"
            assert _lookup(page, live.number, wrong) == 404
            assert page.locator("[data-case]").count() == 0
            wrong_page = page.locator("main").inner_html()
            wrong_message = page.locator("[data-miss]").inner_text()
            assert _lookup(page, _unknown_number(live.number), live.code) == 404
            assert page.locator("main").inner_html() == wrong_page
            assert page.locator("[data-miss]").inner_text() == wrong_message
            assert wrong_message == "没有与该编号和查询码相符的案件。"
            assert live.number not in page.content()
            _no_canary(page, "the miss page")

            # Switch to English: the link sets the language cookie; the page and the lookup
            # answer in English. (The switch then lands on the console, not back on the
            # portal: see test_language_switch_returns_to_the_portal.)
            page.click(".lang-switch a[data-lang=en]")
            page.wait_for_load_state()
            page.goto(f"{live.url}/portal")
            assert page.locator("h1").inner_text() == "Sunshine Policing: follow your case"
            assert _lookup(page, live.number, live.code) == 200
            card = page.locator("[data-case]")
            assert card.locator("[data-stage]").inner_text() == "Under investigation"
            assert card.locator("[data-unit]").inner_text() == "Bund station"
            stages = card.locator("[data-timeline] li[data-kind=stage] strong").all_inner_texts()
            assert stages == ["Received", "Registered", "Under investigation"]
            _no_canary(page, "the English case page")

            # A comment: received, published only after review (so not shown yet).
            form = page.locator("form[data-form=comment]")
            assert "published after review" in form.inner_text()
            form.locator("textarea[name=text]").fill(COMMENT)
            with page.expect_navigation() as nav:
                form.locator("button[type=submit]").click()
            assert nav.value is not None
            assert nav.value.status == 200
            assert page.locator("[data-sent]").inner_text() == (
                "Thank you: your comment was received."
            )
            assert "published after review" in page.locator("form[data-form=comment]").inner_text()
            assert "browser-comment-3K" not in page.content()
            _no_canary(page, "the comment answer")
            page.screenshot(path=str(SCREENSHOT.with_name("portal-comment.png")), full_page=True)
        finally:
            browser.close()
    with live.runtime.sessions.begin() as s:
        stored = s.scalars(select(CaseComment).where(CaseComment.case_id == live.case_id)).all()
        assert [(c.author, c.text, c.public_text) for c in stored] == [("citizen", COMMENT, None)]
    csp = [m for m in problems if "Content Security Policy" in m or "Refused to" in m]
    assert csp == [], csp
    expected = "status of 404"  # the two deliberate misses above
    assert [m for m in problems if expected not in m] == []


def test_language_switch_returns_to_the_portal(live_portal: LivePortal) -> None:
    with httpx.Client(base_url=live_portal.url) as http:
        page = http.get("/portal")
        assert page.status_code == 200
        marker = 'data-lang="en"'
        tag = next(line for line in page.text.splitlines() if marker in line)
        href = tag.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        switched = http.get(href)
        assert switched.status_code == 303
        assert LANG_COOKIE in switched.headers.get("set-cookie", "")
        assert urljoin(live_portal.url, switched.headers["location"]) == f"{live_portal.url}/portal"
