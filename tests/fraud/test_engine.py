"""The fraud engine on hand-made streams: evidence, tiers, look-back, stop-pay, blocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from safecity.fraud import feeds
from safecity.fraud.engine import FraudEngine
from safecity.fraud.identifiers import Pseudonymiser, unseal
from safecity.platform.errors import InvalidInput

P = Pseudonymiser(b"k" * 32)
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SCAMMER = "17012345678"
VICTIM = "13800138000"
FRIEND = "13900139000"


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


class Stream:
    def __init__(self, engine: FraudEngine) -> None:
        self.engine = engine
        self.n = 0
        self.decisions: list[Any] = []

    def send(self, feed: str, **data: Any) -> list[Any]:
        self.n += 1
        data.setdefault("id", f"{feed}-{self.n}")
        kind, payload = feeds.to_event(feed, feeds.parse_record(feed, data), P)
        out = self.engine.process(kind, payload)
        self.decisions.extend(out)
        return out

    def call(self, caller: str, callee: str, start: float, minutes: float | None, **kw: Any) -> str:
        record_id = f"call-{self.n + 1}"
        self.send("call", id=record_id, caller=caller, callee=callee, started_at=at(start), **kw)
        if minutes is not None:
            self.send(
                "call",
                id=record_id,
                caller=caller,
                callee=callee,
                started_at=at(start),
                ended_at=at(start + minutes),
                **kw,
            )
        return record_id

    def actions(self, subject: str) -> list[str]:
        return [d.action for d in self.decisions if d.subject == subject]


def confirm(stream: Stream, kind: str, value: str, minute: float) -> list[Any]:
    return stream.send("confirmed", kind=kind, value=value, case_id="C-1", confirmed_at=at(minute))


def test_a_long_call_with_a_listed_number_escalates_from_callback_to_visit() -> None:
    stream = Stream(FraudEngine())
    confirm(stream, "phone", SCAMMER, 0)
    stream.send("call", id="live", caller=SCAMMER, callee=VICTIM, started_at=at(1))
    assert stream.actions(P.of("phone", VICTIM)) == []  # a call alone is only exposure
    live = stream.engine.tick((T0 + timedelta(minutes=3, seconds=1)).timestamp())  # talking
    assert [d.action for d in live] == ["callback"]
    stream.decisions.extend(live)
    stream.send("call", id="live", caller=SCAMMER, callee=VICTIM, started_at=at(1), ended_at=at(16))
    victim = P.of("phone", VICTIM)
    assert stream.actions(victim)[-1] == "visit"
    visit = next(d for d in stream.decisions if d.action == "visit")
    assert visit.via == P.of("phone", SCAMMER)
    assert "VERY_LONG_CALL_WITH_SUSPECT" in visit.reasons
    assert "CALL_FROM_LISTED" in visit.reasons


def test_the_live_call_check_warns_while_the_call_is_going() -> None:
    engine = FraudEngine()
    stream = Stream(engine)
    confirm(stream, "phone", SCAMMER, 0)
    stream.send("call", id="live", caller=SCAMMER, callee=VICTIM, started_at=at(1))
    # an unrelated event three minutes later moves event time on: the check is due
    stream.call(FRIEND, "13700137000", 4, 1)
    assert "callback" in stream.actions(P.of("phone", VICTIM))


def test_everyday_calls_give_nothing() -> None:
    stream = Stream(FraudEngine())
    for i in range(20):
        stream.call(FRIEND, VICTIM, i * 30, 25)
    assert stream.decisions == []


def test_duplicates_are_skipped_and_tiers_only_escalate() -> None:
    engine = FraudEngine()
    stream = Stream(engine)
    confirm(stream, "phone", SCAMMER, 0)
    first = stream.call(SCAMMER, VICTIM, 1, 12)
    before = list(stream.decisions)
    assert before  # the long call with a listed number was worth a warning
    stream.send(  # the operator sends the same end record again
        "call", id=first, caller=SCAMMER, callee=VICTIM, started_at=at(1), ended_at=at(13)
    )
    assert engine.stats.duplicates == 1
    stream.call(SCAMMER, VICTIM, 20, 12)  # a second long call: no second warning of a tier
    tiers = stream.actions(P.of("phone", VICTIM))
    assert len(tiers) == len(set(tiers))


def test_a_number_confirmed_later_looks_back_at_whom_it_talked_to() -> None:
    stream = Stream(FraudEngine())
    stream.call(SCAMMER, VICTIM, 0, 25)  # nobody knew the number yet
    assert stream.decisions == []
    out = confirm(stream, "phone", SCAMMER, 40)
    victim = [d for d in out if d.subject == P.of("phone", VICTIM)]
    assert victim
    assert victim[0].action in ("callback", "visit")
    assert "VERY_LONG_CALL_WITH_SUSPECT" in victim[0].reasons


def test_a_likely_victim_paying_a_new_payee_gets_a_stop_pay_request() -> None:
    stream = Stream(FraudEngine())
    confirm(stream, "phone", SCAMMER, 0)
    stream.call(SCAMMER, VICTIM, 1, 20)
    stream.send(
        "web",
        subject=VICTIM,
        url="https://safe-account.example.top/",
        kind="app_install",
        flagged_by="operator",
        seen_at=at(25),
    )
    out = stream.send(
        "transfer",
        payer_account="6222020012345678",
        payer_phone=VICTIM,
        payee_account="6222020099998888",
        amount="50000",
        channel="mobile_app",
        new_payee=True,
        attempted_at=at(40),
    )
    assert [d.action for d in out] == ["stop_pay"]
    assert out[0].subject == P.of("account", "6222020012345678")
    assert out[0].amount_cents == 5_000_000
    assert "LIKELY_VICTIM" in out[0].reasons
    ordinary = stream.send(
        "transfer",
        payer_account="6222020055556666",
        payer_phone=FRIEND,
        payee_account="6222020077778888",
        amount="300",
        channel="mobile_app",
        new_payee=True,
        attempted_at=at(41),
    )
    assert ordinary == []


def test_a_reported_bulk_caller_with_a_new_sim_is_proposed_for_blocking_once() -> None:
    stream = Stream(FraudEngine())
    for _ in range(3):
        stream.send("report", identifiers=[{"kind": "phone", "value": SCAMMER}], reported_at=at(0))
    for i in range(45):
        stream.call(
            SCAMMER,
            f"1380013{i:04d}",
            1 + i,
            0.1,
            caller_sim_activated_on="2026-11-25",
            caller_id_type="spoofed_suspect",
        )
    proposals = [d for d in stream.decisions if d.action == "block_number"]
    assert len(proposals) == 1
    assert proposals[0].subject == P.of("phone", SCAMMER)
    assert proposals[0].sealed is not None
    assert unseal(P, "phone", proposals[0].sealed) == "+8617012345678"  # for the reviewer
    assert "REPORTED_MANY" in proposals[0].reasons


def test_wrong_event_types_and_times_are_refused() -> None:
    engine = FraudEngine()
    with pytest.raises(InvalidInput, match="does not take"):
        engine.process("fraud.fax.sent", {"record_id": "1", "time": at(0)})
    with pytest.raises(InvalidInput, match="ISO 8601"):
        engine.process(feeds.REPORT_FILED, {"record_id": "2", "time": "yesterday"})


def test_a_late_end_record_without_its_start_still_counts() -> None:
    stream = Stream(FraudEngine())
    confirm(stream, "phone", SCAMMER, 0)
    stream.send(  # only the finished record arrives, after later events
        "call", caller=SCAMMER, callee=VICTIM, started_at=at(1), ended_at=at(15)
    )
    assert stream.actions(P.of("phone", VICTIM))
    assert stream.engine.numbers[P.of("phone", SCAMMER)].calls_per_hour == 1


def test_a_trained_model_joins_the_rules_and_is_asked_sparingly() -> None:
    asked: list[dict[str, float]] = []

    def model(features: dict[str, float]) -> float:
        asked.append(features)
        return 0.9 if features["calls_per_hour"] >= 10 else 0.1

    stream = Stream(FraudEngine(model=model))
    for i in range(40):
        stream.call(SCAMMER, f"1380013{i:04d}", i * 0.5, 0.1)
    engine = stream.engine
    score = engine._number(P.of("phone", SCAMMER), engine.watermark)
    assert "MODEL" in score.reasons
    assert 0 < len(asked) <= 40 // 5  # cached between calls, not once per event
    assert set(asked[0]) >= {"calls_per_hour", "sim_age_days", "short_call_share"}
