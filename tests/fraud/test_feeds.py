"""Feed records become pseudonymised bus events; bad records are clear errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from safecity.fraud import feeds
from safecity.fraud.identifiers import Pseudonymiser
from safecity.platform.errors import InvalidInput
from safecity.platform.events import validate

P = Pseudonymiser(b"k" * 32)
PLAIN = ("13800138000", "8613800138000", "6222020012345678", "example.top")


def _event(feed: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kind, payload = feeds.to_event(feed, feeds.parse_record(feed, data), P, text_scorer=_scorer)
    validate(kind, payload)
    text = json.dumps(payload)
    for plain in PLAIN:
        assert plain not in text, f"{plain} leaked into a {kind} event"
    return kind, payload


def _scorer(text: str) -> tuple[float, list[str]]:
    return (0.9, ["SAFE_ACCOUNT"]) if "安全账户" in text else (0.1, [])


def test_a_call_is_announced_at_start_and_end_with_pseudonyms_only() -> None:
    base = {
        "id": "c1",
        "caller": "+86 170 1234 5678",
        "callee": "13800138000",
        "started_at": "2026-11-26T10:00:00+08:00",
        "caller_sim_activated_on": "2026-11-20",
        "caller_id_type": "virtual",
    }
    kind, started = _event("call", base)
    assert kind == feeds.CALL_STARTED
    assert started["duration_s"] is None
    assert started["caller_kind"] == "virtual"
    assert started["caller_sim_age_days"] == 6
    assert started["time"] == "2026-11-26T02:00:00+00:00"  # UTC
    assert started["purpose"] == "fraud_prevention"
    assert started["retention_days"] == 180
    kind, ended = _event("call", {**base, "ended_at": "2026-11-26T10:12:30+08:00"})
    assert kind == feeds.CALL_ENDED
    assert ended["duration_s"] == 750
    assert ended["caller"] == started["caller"]
    assert ended["callee"] == P.of("phone", "13800138000")


def test_sms_text_is_scored_at_intake_and_never_travels() -> None:
    record = {
        "id": "s1",
        "sender": "17012345678",
        "recipient": "13800138000",
        "sent_at": "2026-11-26T10:00:00Z",
        "urls": ["https://www.example.top/x"],
        "consent": True,
        "text": "您的账户涉案，请转入安全账户",
    }
    kind, payload = _event("sms", record)
    assert kind == feeds.SMS_SENT
    assert payload["text_score"] == 0.9
    assert payload["text_reasons"] == ["SAFE_ACCOUNT"]
    assert "安全账户" not in json.dumps(payload, ensure_ascii=False)
    assert payload["domains"] == [P.of("domain", "example.top")]
    _, no_consent = _event("sms", {**record, "id": "s2", "consent": False})
    assert no_consent["text_score"] is None  # without consent the text is not even scored


def test_transfer_report_web_and_confirmed_feeds() -> None:
    _, transfer = _event(
        "transfer",
        {
            "id": "t1",
            "payer_account": "6222 0200 1234 5678",
            "payer_phone": "13800138000",
            "payee_account": "6222020099998888",
            "amount": "5000.50",
            "channel": "mobile_app",
            "new_payee": True,
            "attempted_at": "2026-11-26T10:00:00Z",
        },
    )
    assert transfer["amount_cents"] == 500050
    assert transfer["payer"] == P.of("account", "6222020012345678")
    _, report = _event(
        "report",
        {
            "id": "r1",
            "identifiers": [
                {"kind": "phone", "value": "17012345678"},
                {"kind": "phone", "value": "+86 170-1234-5678"},
                {"kind": "domain", "value": "example.top"},
            ],
            "reported_at": "2026-11-26T10:00:00Z",
        },
    )
    assert len(report["identifiers"]) == 2  # one number written twice counts once
    kind, _ = _event(
        "web",
        {
            "id": "w1",
            "subject": "13800138000",
            "url": "https://example.top/pay",
            "kind": "app_install",
            "flagged_by": "operator",
            "seen_at": "2026-11-26T10:00:00Z",
        },
    )
    assert kind == feeds.WEB_FLAGGED
    kind, confirmed = _event(
        "confirmed",
        {
            "id": "k1",
            "kind": "account",
            "value": "6222020099998888",
            "case_id": "CASE-1",
            "confirmed_at": "2026-11-26T10:00:00Z",
        },
    )
    assert confirmed["identifier"] == P.of("account", "6222020099998888")


@pytest.mark.parametrize(
    ("feed", "data", "message"),
    [
        ("fax", {}, "unknown fraud feed"),
        ("call", {"id": "x"}, "call record invalid at caller"),
        (
            "call",
            {"id": "x", "caller": "1", "callee": "2", "started_at": "2026-11-26T10:00:00"},
            "started_at",  # a time without a zone is refused
        ),
        (
            "transfer",
            {
                "id": "t",
                "payer_account": "6222020012345678",
                "payer_phone": "13800138000",
                "payee_account": "6222020099998888",
                "amount": "-5",
                "channel": "mobile_app",
                "new_payee": True,
                "attempted_at": "2026-11-26T10:00:00Z",
            },
            "amount",
        ),
        (
            "report",
            {"id": "r", "identifiers": [], "reported_at": "2026-11-26T10:00:00Z"},
            "identifiers",
        ),
        (
            "sms",
            {
                "id": "s",
                "sender": "1",
                "recipient": "2",
                "sent_at": "2026-11-26T10:00:00Z",
                "extra": 1,
            },
            "extra",
        ),
    ],
)
def test_malformed_records_are_refused_with_the_field_named(
    feed: str, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        feeds.parse_record(feed, data)


def test_bad_identifiers_and_reversed_calls_are_refused_at_intake() -> None:
    record = feeds.parse_record(
        "call",
        {
            "id": "c",
            "caller": "not a number",
            "callee": "13800138000",
            "started_at": "2026-11-26T10:00:00Z",
        },
    )
    with pytest.raises(InvalidInput, match="not a phone number"):
        feeds.to_event("call", record, P)
    reversed_call = feeds.parse_record(
        "call",
        {
            "id": "c",
            "caller": "13900139000",
            "callee": "13800138000",
            "started_at": "2026-11-26T10:00:00Z",
            "ended_at": "2026-11-26T09:59:00Z",
        },
    )
    with pytest.raises(InvalidInput, match="before started_at"):
        feeds.to_event("call", reversed_call, P)
