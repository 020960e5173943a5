"""A rule-based scam-SMS scorer: the default when no trained text model is configured.

The phrases are the scripts' tell-tale requests, in Chinese and English: move money to a
"safe account", a refund that needs your card, part-time "likes" work, a case against
you, a verification code to pass on, a loan or credit record to "fix". Each phrase
family has a weight and a reason code; the score is their noisy-or, so a message that
hits two families scores higher than one that hits one family twice. A trained model
(``safecity.fraud.ml.text_model``) replaces this when configured; the rules stay as
its explainable baseline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from safecity.fraud.scoring import noisy_or


@dataclass(frozen=True)
class Family:
    code: str
    weight: float
    pattern: re.Pattern[str]


def _family(code: str, weight: float, *phrases: str) -> Family:
    return Family(code, weight, re.compile("|".join(phrases), re.IGNORECASE))


FAMILIES: tuple[Family, ...] = (
    _family("SAFE_ACCOUNT", 0.8, r"安全账户", r"资金.{0,4}(核查|清查|监管)", r"safe account"),
    _family(
        "FAKE_AUTHORITY",
        0.5,
        r"公安局|检察院|法院|通缉|涉嫌.{0,6}(洗钱|案)",
        r"arrest warrant",
        r"police (case|investigation)",
    ),
    _family(
        "REFUND", 0.45, r"退款|理赔|快递.{0,4}(丢失|赔付)|双倍赔偿", r"refund", r"compensation"
    ),
    _family(
        "PART_TIME",
        0.55,
        r"刷单|点赞.{0,6}(佣金|返利)|兼职.{0,8}日(结|赚)",
        r"like.{0,10}earn",
        r"part[- ]time.{0,20}(daily|per day)",
    ),
    _family(
        "CODE_REQUEST", 0.45, r"验证码.{0,8}(告诉|发给|提供)", r"(send|tell|share).{0,12}(code|OTP)"
    ),
    _family(
        "CREDIT_FIX",
        0.4,
        r"征信.{0,6}(修复|影响|注销)|注销.{0,4}(校园贷|网贷)",
        r"(credit|loan).{0,12}(cancel|fix|repair)",
    ),
    _family(
        "INVESTMENT",
        0.35,
        r"稳赚|高回报|内幕|带单|导师",
        r"guaranteed (profit|return)",
        r"insider tip",
    ),
    _family(
        "URGENCY", 0.2, r"立即|马上|否则.{0,6}(冻结|逮捕)", r"urgent|immediately|within \d+ hours"
    ),
    _family("PRIZE", 0.3, r"中奖|恭喜.{0,6}获得", r"you (have )?won", r"claim your prize"),
    _family("LINK_OR_APP", 0.15, r"https?://", r"下载.{0,6}(APP|app|软件)", r"download.{0,10}app"),
)


def score_text(text: str) -> tuple[float, list[str]]:
    """(score in [0, 1], reason codes strongest first) for one SMS text."""
    hits = [(f.code, f.weight) for f in FAMILIES if f.pattern.search(text or "")]
    result = noisy_or(hits)
    return result.value, list(result.reasons)
