"""The rule-based scam-SMS scorer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from safecity.fraud.text_rules import score_text


def test_scam_scripts_score_high_and_everyday_messages_low() -> None:
    scam, reasons = score_text("【公安局】您涉嫌洗钱案，请立即将资金转入安全账户配合核查")
    assert scam >= 0.9
    assert reasons[0] == "SAFE_ACCOUNT"
    assert "FAKE_AUTHORITY" in reasons
    brushing, reasons = score_text("兼职刷单，点赞一次佣金3元，日结！下载APP: http://x.example.top")
    assert brushing >= 0.6
    assert "PART_TIME" in reasons
    for everyday in (
        "妈，我晚上不回家吃饭了",
        "Meeting moved to 3pm, see you there",
        "快递已放门口",
    ):
        value, _ = score_text(everyday)
        assert value < 0.3, everyday


@given(st.text(max_size=300))
def test_any_text_gets_a_score_in_range(text: str) -> None:
    value, reasons = score_text(text)
    assert 0.0 <= value <= 1.0
    assert (value == 0.0) == (reasons == [])
