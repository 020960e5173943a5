"""Scores with reason codes: scam number, victim, transfer.

Each score is a noisy-or of weighted signals, ``1 - Π(1 - wᵢ)``: every signal that fires
adds its reason code, the score stays in [0, 1], and the reasons explain it. The weights
are one table (:data:`NUMBER_SIGNALS` …) versioned by :data:`RULES_VERSION`; a trained
number model (``safecity fraud train``) joins as one more signal, ``MODEL``, so rules and
the model sit side by side and every alert still carries reason codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from safecity.fraud.features import AccountState, NumberState, PersonState

RULES_VERSION = "2026.11-1"

# signal code → weight. Thresholds live next to the signal in number_score().
NUMBER_SIGNALS: dict[str, float] = {
    "LISTED": 1.0,
    "REPORTED": 0.35,
    "REPORTED_MANY": 0.55,
    # bulk calling: telemarketers and couriers look like this too, so together these
    # four count at most BULK_CAP — a bulk caller alone is not suspect
    "HIGH_CALL_RATE": 0.2,
    "VERY_HIGH_CALL_RATE": 0.3,
    "MANY_DISTINCT_CALLEES": 0.15,
    "SHORT_CALL_SHARE": 0.2,
    "NO_FAN_IN": 0.15,
    "NEW_SIM": 0.3,
    "VERY_NEW_SIM": 0.4,
    "RISKY_CALLER_ID": 0.3,
    "VIRTUAL_NUMBER": 0.1,
    "SCAM_SMS_TEXT": 0.35,
    "SMS_FANOUT": 0.2,
}
BULK = frozenset(
    {
        "HIGH_CALL_RATE",
        "VERY_HIGH_CALL_RATE",
        "MANY_DISTINCT_CALLEES",
        "SHORT_CALL_SHARE",
        "NO_FAN_IN",
    }
)
BULK_CAP = 0.45

# Evidence a person collects from contact with a suspect (× the suspect's score).
VICTIM_SIGNALS: dict[str, float] = {
    # exposure: contact alone; together capped at EXPOSURE_CAP (below the warning line)
    "CALL_FROM_LISTED": 0.25,
    "CALL_FROM_SUSPECT": 0.15,
    # engagement: the person stayed on the line, came back, clicked, installed
    "LIVE_CALL_WITH_SUSPECT": 0.4,
    "LONG_CALL_WITH_SUSPECT": 0.45,
    "VERY_LONG_CALL_WITH_SUSPECT": 0.6,
    "REPEATED_CONTACT": 0.35,
    "SCAM_SMS": 0.3,  # exposure: an SMS from a suspect sender or with a listed link
    "SCAM_TEXT": 0.4,  # × the text score of a consenting user's SMS
    "VISITED_FLAGGED_URL": 0.35,
    "VISITED_LISTED_URL": 0.5,
    "INSTALLED_FLAGGED_APP": 0.55,
}
EXPOSURE = frozenset({"CALL_FROM_LISTED", "CALL_FROM_SUSPECT", "SCAM_SMS"})
EXPOSURE_CAP = 0.3
VULNERABLE_FACTOR = 1.15  # older and very young people: scripts target them

TRANSFER_SIGNALS: dict[str, float] = {
    "LIKELY_VICTIM": 0.9,  # × the payer's victim score
    "NEW_PAYEE": 0.15,
    "PAYEE_LISTED": 0.7,
    "PAYEE_FAN_IN": 0.35,
    "LARGE_AMOUNT": 0.1,
    "VERY_LARGE_AMOUNT": 0.2,
}

NumberModel = Callable[[dict[str, float]], float]
MODEL_WEIGHT = 0.8


@dataclass(frozen=True, slots=True)
class Score:
    value: float
    reasons: tuple[str, ...]

    @property
    def top_reasons(self) -> tuple[str, ...]:
        return self.reasons[:5]


def noisy_or(signals: Iterable[tuple[str, float]]) -> Score:
    """Combine (code, weight) pairs; reasons sorted by weight, strongest first."""
    fired = sorted(((c, w) for c, w in signals if w > 0), key=lambda cw: -cw[1])
    miss = 1.0
    for _, weight in fired:
        miss *= 1.0 - min(weight, 1.0)
    return Score(value=round(1.0 - miss, 4), reasons=tuple(c for c, _ in fired))


def number_signals(state: NumberState, *, listed: bool, now: float) -> list[tuple[str, float]]:
    w = NUMBER_SIGNALS
    out: list[tuple[str, float]] = []
    if listed:
        out.append(("LISTED", w["LISTED"]))
    if state.reports >= 3:
        out.append(("REPORTED_MANY", w["REPORTED_MANY"]))
    elif state.reports >= 1:
        out.append(("REPORTED", w["REPORTED"]))
    rate = state.calls_per_hour
    if rate >= 40:
        out.append(("VERY_HIGH_CALL_RATE", w["VERY_HIGH_CALL_RATE"]))
    elif rate >= 15:
        out.append(("HIGH_CALL_RATE", w["HIGH_CALL_RATE"]))
    fan_out = len(state.callees_24h)
    if fan_out >= 30:
        out.append(("MANY_DISTINCT_CALLEES", w["MANY_DISTINCT_CALLEES"]))
    if len(state.ended) >= 8 and state.short_call_share >= 0.6:
        out.append(("SHORT_CALL_SHARE", w["SHORT_CALL_SHARE"]))
    if state.sim_age_days is not None and state.sim_age_days <= 7:
        out.append(("VERY_NEW_SIM", w["VERY_NEW_SIM"]))
    elif state.sim_age_days is not None and state.sim_age_days <= 30:
        out.append(("NEW_SIM", w["NEW_SIM"]))
    if fan_out >= 10 and len(state.callers_24h) == 0:
        out.append(("NO_FAN_IN", w["NO_FAN_IN"]))
    if state.risky_caller_id:
        out.append(("RISKY_CALLER_ID", w["RISKY_CALLER_ID"]))
    if state.kind == "virtual":
        out.append(("VIRTUAL_NUMBER", w["VIRTUAL_NUMBER"]))
    if state.max_text_score >= 0.7:
        out.append(("SCAM_SMS_TEXT", w["SCAM_SMS_TEXT"] * state.max_text_score))
    if len(state.sms_out_24h) >= 30:
        out.append(("SMS_FANOUT", w["SMS_FANOUT"]))
    return out


def capped_or(signals: Iterable[tuple[str, float]], group: frozenset[str], cap: float) -> Score:
    """Noisy-or where the signals in ``group`` together count at most ``cap`` (their
    reason codes still show)."""
    fired = sorted(((c, w) for c, w in signals if w > 0), key=lambda cw: -cw[1])
    miss_in = miss_out = 1.0
    for code, weight in fired:
        if code in group:
            miss_in *= 1.0 - min(weight, 1.0)
        else:
            miss_out *= 1.0 - min(weight, 1.0)
    inside = min(1.0 - miss_in, cap)
    return Score(
        value=round(1.0 - (1.0 - inside) * miss_out, 4), reasons=tuple(c for c, _ in fired)
    )


def number_score(
    state: NumberState, *, listed: bool, now: float, model_probability: float | None = None
) -> Score:
    """The scam-number score; a trained model's probability (when one is configured)
    joins the rules as the ``MODEL`` signal."""
    signals = number_signals(state, listed=listed, now=now)
    if model_probability is not None and model_probability >= 0.5 and not listed:
        signals.append(("MODEL", model_probability * MODEL_WEIGHT))
    return capped_or(signals, BULK, BULK_CAP)


def victim_score(person: PersonState) -> Score:
    """Noisy-or of the person's evidence in the window; the strongest evidence per code
    counts once (ten short calls from one number are not ten times the evidence)."""
    best: dict[str, float] = {}
    for ev in person.evidence:
        if ev.weight > best.get(ev.code, 0.0):
            best[ev.code] = ev.weight
    score = capped_or(best.items(), EXPOSURE, EXPOSURE_CAP)
    if person.age_band in ("60_plus", "under_25") and score.value > 0:
        return Score(
            min(1.0, round(score.value * VULNERABLE_FACTOR, 4)),
            (*score.reasons, "VULNERABLE_PROFILE"),
        )
    return score


def transfer_score(
    *,
    victim: Score,
    payee: AccountState,
    payee_listed: bool,
    new_payee: bool,
    amount_cents: int,
) -> Score:
    w = TRANSFER_SIGNALS
    signals: list[tuple[str, float]] = []
    if victim.value > 0:
        signals.append(("LIKELY_VICTIM", w["LIKELY_VICTIM"] * victim.value))
    if new_payee:
        signals.append(("NEW_PAYEE", w["NEW_PAYEE"]))
    if payee_listed:
        signals.append(("PAYEE_LISTED", w["PAYEE_LISTED"]))
    if payee.fan_in >= 5:
        signals.append(("PAYEE_FAN_IN", w["PAYEE_FAN_IN"]))
    if amount_cents >= 5_000_000:
        signals.append(("VERY_LARGE_AMOUNT", w["VERY_LARGE_AMOUNT"]))
    elif amount_cents >= 1_000_000:
        signals.append(("LARGE_AMOUNT", w["LARGE_AMOUNT"]))
    return noisy_or(signals)
