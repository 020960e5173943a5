"""Rolling features per phone number, per person and per account, updated as events arrive.

All windows run on event time (seconds since the epoch, floats): a late event lands in
the window it belongs to, and nothing here reads the wall clock. Each state keeps only
what its windows need (deques pruned on every update), so memory stays proportional to
the active numbers, not to history.

Number (the caller side): calls started in the last hour, distinct callees and callers
(fan-out / fan-in) in 24 h, the share of short calls among the last ended ones, SMS
fan-out in 24 h, SIM age, the caller-id types seen, citizen reports, block-list state.
Account (the payee side): distinct payers in 24 h (mule accounts collect from many).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

HOUR = 3600.0
DAY = 24 * HOUR
SHORT_CALL_S = 20.0
ENDED_WINDOW = 50
CONTACTS_KEPT = 500
RISKY_CALLER_IDS = frozenset({"international", "virtual", "hidden", "spoofed_suspect"})


def _prune_map(entries: dict[str, float], cutoff: float) -> None:
    if len(entries) > 64 or any(t < cutoff for t in entries.values()):
        for key in [k for k, t in entries.items() if t < cutoff]:
            del entries[key]


@dataclass(slots=True)
class NumberState:
    first_seen: float
    kind: str = "mobile"
    calls_1h: deque[float] = field(default_factory=deque)
    callees_24h: dict[str, float] = field(default_factory=dict)
    callers_24h: dict[str, float] = field(default_factory=dict)
    ended: deque[float] = field(default_factory=lambda: deque(maxlen=ENDED_WINDOW))
    sms_out_24h: dict[str, float] = field(default_factory=dict)
    sim_age_days: int | None = None
    risky_caller_id: bool = False
    reports: int = 0
    max_text_score: float = 0.0
    last_seen: float = 0.0
    suspect: bool = False
    sealed: str | None = None  # the number itself, sealed (see identifiers.seal)
    # answered calls ≥ 1 min and SMS with links, newest last: (time, person, code, length)
    contacts: deque[tuple[float, str, str, float]] = field(
        default_factory=lambda: deque(maxlen=CONTACTS_KEPT)
    )

    def call_out(self, t: float, callee: str) -> None:
        self.calls_1h.append(t)
        while self.calls_1h and self.calls_1h[0] < t - HOUR:
            self.calls_1h.popleft()
        self.callees_24h[callee] = max(t, self.callees_24h.get(callee, t))
        _prune_map(self.callees_24h, t - DAY)
        self.last_seen = max(self.last_seen, t)

    def call_in(self, t: float, caller: str) -> None:
        self.callers_24h[caller] = max(t, self.callers_24h.get(caller, t))
        _prune_map(self.callers_24h, t - DAY)

    def sms_out(self, t: float, recipient: str, text_score: float | None) -> None:
        self.sms_out_24h[recipient] = t
        _prune_map(self.sms_out_24h, t - DAY)
        if text_score is not None:
            self.max_text_score = max(self.max_text_score, text_score)
        self.last_seen = max(self.last_seen, t)

    @property
    def calls_per_hour(self) -> int:
        return len(self.calls_1h)

    @property
    def short_call_share(self) -> float:
        if not self.ended:
            return 0.0
        return sum(1 for d in self.ended if d < SHORT_CALL_S) / len(self.ended)

    def vector(self, now: float) -> dict[str, float]:
        """The features as one flat dict (what a trained number model reads)."""
        return {
            "calls_per_hour": float(self.calls_per_hour),
            "distinct_callees_24h": float(len(self.callees_24h)),
            "distinct_callers_24h": float(len(self.callers_24h)),
            "short_call_share": self.short_call_share,
            "ended_calls": float(len(self.ended)),
            "sms_fanout_24h": float(len(self.sms_out_24h)),
            "sim_age_days": float(self.sim_age_days if self.sim_age_days is not None else -1),
            "risky_caller_id": float(self.risky_caller_id),
            "virtual_number": float(self.kind == "virtual"),
            "reports": float(self.reports),
            "max_text_score": self.max_text_score,
            "hours_active": (now - self.first_seen) / HOUR,
        }


@dataclass(slots=True)
class AccountState:
    payers_24h: dict[str, float] = field(default_factory=dict)

    def paid_by(self, t: float, payer: str) -> None:
        self.payers_24h[payer] = t
        _prune_map(self.payers_24h, t - DAY)

    @property
    def fan_in(self) -> int:
        return len(self.payers_24h)


@dataclass(slots=True)
class Evidence:
    at: float
    code: str
    weight: float
    via: str  # the number, domain or account that produced it


@dataclass(slots=True)
class PersonState:
    """What the engine knows of one (pseudonymous) person as a possible victim."""

    evidence: deque[Evidence] = field(default_factory=deque)
    contacts: dict[str, int] = field(default_factory=dict)  # number → conversations ≥ 1 min
    live_calls: dict[str, tuple[str, float]] = field(default_factory=dict)
    tier: int = 0
    tier_at: float = 0.0
    lat: float | None = None
    lng: float | None = None
    age_band: str | None = None

    def add(self, ev: Evidence, window: float) -> None:
        self.evidence.append(ev)
        while self.evidence and self.evidence[0].at < ev.at - window:
            self.evidence.popleft()
