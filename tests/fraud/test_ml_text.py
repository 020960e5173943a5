"""Scam-SMS text model: English and Chinese, reason codes, normalisation."""

from __future__ import annotations

import pytest

from safecity.fraud.ml.text_model import normalise, train_text_model
from safecity.platform.errors import InvalidInput

ZH_SCAM = [
    "您的银行账户存在异常，请立即点击链接 http://bank-safe.xyz 验证身份",
    "恭喜您中奖十万元，请先转账手续费到安全账户领取奖金",
    "我是公安局民警，您涉嫌洗钱，请将资金转入安全账户配合调查",
    "您的快递丢失，客服将为您理赔，请提供银行卡号和验证码",
    "刷单兼职日赚五百，先垫付货款返佣金，加微信详聊",
    "医保卡异常将被冻结，请拨打 400 123 4567 转账解冻",
    "贷款无抵押秒到账，先交保证金到指定账户即可放款",
    "您的账户涉嫌违规，请立即转账到安全账户并提供验证码",
]
ZH_NORMAL = [
    "妈，我今晚回家吃饭，帮我留点菜",
    "明天上午十点在会议室开会，请准时参加",
    "周末一起去爬山吧，天气预报说是晴天",
    "孩子的家长会改到下周三下午了",
    "我到楼下了，你下来拿一下快递",
    "晚上七点电影院门口见，我买好票了",
    "这个月的水电费我已经交了",
    "老师布置的作业记得检查一下",
]
EN_SCAM = [
    "WINNER! You have won a £1000 prize. Call 09061701461 to claim now",
    "URGENT your account is suspended, verify at www.secure-bank-login.com",
    "Free entry to win cash! Text WIN to 87121 now, T&C apply",
    "Congratulations you won a free holiday, claim your prize call 08712300220",
]
EN_NORMAL = [
    "Are we still meeting for lunch tomorrow?",
    "Sorry I'm late, the bus was slow",
    "Can you pick up milk on the way home",
    "Happy birthday! See you at the party tonight",
]


def test_chinese_scam_texts_score_higher_than_normal_ones() -> None:
    model = train_text_model(ZH_SCAM + ZH_NORMAL, [1] * 8 + [0] * 8, seed=0)
    scam = model.predict_proba("紧急通知：您的账户被冻结，请转账到安全账户解冻")[0]
    ok = model.predict_proba("今天晚上回家吃饭吗")[0]
    assert scam > 0.5 > ok
    codes = model.reason_codes("请立即转账到安全账户", top=3)
    assert len(codes) == 3
    assert codes[0].contribution >= codes[1].contribution > 0
    assert any("账户" in c.feature or "转账" in c.feature for c in codes)
    assert all(c.feature.startswith(("char:", "word:")) for c in codes)


def test_mixed_english_and_chinese_batch() -> None:
    texts = ZH_SCAM + ZH_NORMAL + EN_SCAM + EN_NORMAL
    y = [1] * 8 + [0] * 8 + [1] * 4 + [0] * 4
    model = train_text_model(texts, y, seed=0)
    p = model.predict_proba(["Claim your cash prize, call 09061234567", "see you at lunch"])
    assert p.shape == (2,)
    assert p[0] > p[1]
    assert model.predict(["WINNER claim your prize now"])[0]


def test_normalise_replaces_numbers_urls_money() -> None:
    out = normalise("Call 0800 123 4567 or visit http://x.co/abc for £100! 12")
    assert "zphonez" in out
    assert "zurlz" in out
    assert "zmoneyz" in out
    assert "znum2z" in out
    assert "0800" not in out
    assert "zmoneyz" in normalise("奖金50000元")


def test_bad_input() -> None:
    with pytest.raises(InvalidInput, match="both classes"):
        train_text_model(["a", "b"], [1, 1])
    with pytest.raises(InvalidInput, match="labels"):
        train_text_model(["a", "b"], [1])
    model = train_text_model(EN_SCAM + EN_NORMAL, [1] * 4 + [0] * 4)
    with pytest.raises(InvalidInput, match="strings"):
        model.predict_proba([1, 2])  # type: ignore[list-item]
