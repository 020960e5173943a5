"""Message catalogues: complete in both languages, and every key the console uses exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from starlette.requests import Request

from safecity.cases.replies_due import TITLE_KEY as CASES_REPLY_TITLE
from safecity.cases.reviews_jobs import TITLE_KEY as CASES_REVIEW_TITLE
from safecity.console import i18n, pages, pages_admin
from safecity.crowd.risk import TITLE_KEY as CROWD_RISK_TITLE
from safecity.eservices.jobs import TITLE_KEY as ESERVICES_SLA_TITLE
from safecity.fraud import models as fraud_models
from safecity.fraud import pages as fraud_pages
from safecity.fraud.actions import VISIT_TITLE as FRAUD_VISIT_TITLE
from safecity.sensing.rules import RuleSet
from safecity.sensing.stale import TITLE as STALE_TITLE

CONSOLE = Path(pages.__file__).parent
LITERAL_IN_TEMPLATE = re.compile(r"""\bt\(\s*(["'])([^"']+)\1\s*[,)]""")
DYNAMIC_IN_TEMPLATE = re.compile(r"""\bt\(\s*(["'])([^"']+)\1\s*~""")
MARKED_IN_PYTHON = re.compile(r"""\bmsg\(\s*(["'])([^"']+)\1\s*\)""")


def load(lang: str) -> dict[str, str]:
    data = json.loads((CONSOLE / "messages" / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def templates_text() -> str:
    files = sorted((CONSOLE / "templates").rglob("*.html"))
    assert files
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def dynamic_keys() -> set[str]:
    """Keys templates build from a prefix and a value the code enumerates."""
    values = {
        "lang.": i18n.LANGUAGES,
        "role.": pages.ROLE_KEYS,
        "status.db.": pages.DB_KINDS,
        "status.bus.": pages.BUS_KINDS,
        "org.kind.": pages_admin.ORG_KIND_KEYS,
        "job.status.": pages_admin.JOB_STATUS_KEYS,
        "notify.status.": pages_admin.NOTIFY_STATUS_KEYS,
        "fraud.counter.": fraud_pages.COUNTERS,
        "fraud.action.": fraud_models.ACTIONS,
        "fraud.outcome.": tuple({o for os in fraud_models.OUTCOMES.values() for o in os}),
    }
    prefixes = {m.group(2) for m in DYNAMIC_IN_TEMPLATE.finditer(templates_text())}
    assert prefixes == set(values), "a template builds keys from a prefix this test ignores"
    return {prefix + value for prefix, options in values.items() for value in options}


def used_keys() -> set[str]:
    literal = {m.group(2) for m in LITERAL_IN_TEMPLATE.finditer(templates_text())}
    python = {
        m.group(2)
        for f in CONSOLE.glob("*.py")
        for m in MARKED_IN_PYTHON.finditer(f.read_text(encoding="utf-8"))
    }
    assert {d.label for d in pages.DOMAINS} <= python
    return literal | python | dynamic_keys() | rule_title_keys()


def rule_title_keys() -> set[str]:
    """Alert titles are message keys named by the shipped rules (rendered with t()), by
    the stale-sensor job's outage alerts, the fraud engine's visit alerts and the
    e-services deadline alerts."""
    titles = {STALE_TITLE, FRAUD_VISIT_TITLE, ESERVICES_SLA_TITLE, CASES_REPLY_TITLE}
    titles |= {CROWD_RISK_TITLE, CASES_REVIEW_TITLE}
    return {rule.alert.title for rule in RuleSet.shipped().rules} | titles


def test_catalogues_have_the_same_keys_and_no_empty_text() -> None:
    zh, en = load("zh"), load("en")
    assert set(zh) == set(en), set(zh) ^ set(en)
    for lang, catalogue in (("zh", zh), ("en", en)):
        empty = [k for k, v in catalogue.items() if not isinstance(v, str) or not v.strip()]
        assert empty == [], f"{lang}: {empty}"


def test_catalogues_really_differ() -> None:
    zh, en = load("zh"), load("en")
    same = {k for k in zh if zh[k] == en[k]} - {"lang.zh", "lang.en", "status.db.postgresql"}
    assert same <= {"status.bus.nats"}, same


def test_every_key_used_exists_in_both_catalogues() -> None:
    used = used_keys()
    assert len(used) > 30  # the scan found the templates' keys
    for lang in i18n.LANGUAGES:
        missing = used - set(load(lang))
        assert missing == set(), f"{lang} lacks {sorted(missing)}"


def test_every_catalogue_key_is_used() -> None:
    unused = set(load("en")) - used_keys()
    assert unused == set(), f"unused message keys: {sorted(unused)}"


def test_templates_have_no_hard_coded_text() -> None:
    """Text between tags is either a Jinja expression or whitespace/punctuation."""
    for path in sorted((CONSOLE / "templates").rglob("*.html")):
        source = path.read_text(encoding="utf-8")
        source = re.sub(r"{[{%#].*?[}%#]}", " ", source, flags=re.S)
        for text in re.findall(r">([^<]+)<", source):
            stray = re.sub(r"[\s·:|/()\-–]+", "", text)
            assert stray == "", f"{path.name}: hard-coded text {text.strip()!r}"


def test_translator_falls_back_and_formats() -> None:
    en = i18n.translator("en")
    assert en("login.submit") == "Sign in"
    assert i18n.translator("zh")("login.submit") == "登录"
    assert en("no.such.key") == "no.such.key"
    assert i18n.translator("xx").lang == "zh"


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "zh"),
        ({"Accept-Language": "en-US,en;q=0.9"}, "en"),
        ({"Accept-Language": "fr-FR, en;q=0.5, zh;q=0.8"}, "zh"),
        ({"Accept-Language": "de, fr;q=0.5"}, "zh"),
        ({"Accept-Language": "zh;q=0, en;q=0.1"}, "en"),
        ({"Accept-Language": "en;q=bogus, zh-TW"}, "zh"),
        ({"Cookie": "safecity_lang=en", "Accept-Language": "zh-CN"}, "en"),
        ({"Cookie": "safecity_lang=xx", "Accept-Language": "en"}, "en"),
    ],
)
def test_language_negotiation(headers: dict[str, str], expected: str) -> None:
    assert i18n.negotiate(_request(headers), "zh") == expected


def test_default_language_is_used_without_preferences() -> None:
    assert i18n.negotiate(_request({}), "en") == "en"
