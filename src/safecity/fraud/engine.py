"""The fraud engine: events in, decisions out, in event time, in memory.

One :class:`FraudEngine` holds the rolling features of every number, person and account
it has seen (see :mod:`safecity.fraud.features`) and turns each event into zero or more
:class:`Decision` s (see :mod:`safecity.fraud.scoring` for the scores):

- a call from a suspect or listed number gives its callee evidence at once; a call still
  going is re-scored every :data:`LIVE_CALL_CHECK` (the caller has placed more calls by
  then) by :meth:`FraudEngine.tick`; a long call at its end gives more;
- a number that *becomes* suspect — its pattern crosses the line, a citizen reports it,
  a case confirms it — looks back: the people it talked to at length or sent links to in
  the last :data:`VICTIM_WINDOW` get the evidence now (scam numbers are fresh SIMs; their
  first victims are contacted before their pattern shows);
- SMS from suspect senders or with scam text, flagged URL visits and app installs add
  evidence; domains that suspect numbers spread become suspect themselves;
- a person's victim score crossing a tier threshold gives one decision per tier
  (``warn`` → ``callback`` → ``visit``): the tiers only escalate, so a person is not
  warned again and again for one episode;
- a transfer attempt is scored with the payer's victim score, the payee's fan-in and
  block-list state: above :data:`STOP_PAY` it becomes a ``stop_pay`` request;
- a number or domain scoring above :data:`BLOCK_PROPOSAL` becomes a ``block_number`` /
  ``block_domain`` proposal, which a reviewer must approve (never listed automatically).

Duplicate events (same type and record id) are skipped; late events update the windows
they belong to. The engine is pure: it reads no clock and writes nothing; the pipeline
(:mod:`safecity.fraud.pipeline`) persists its decisions.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from safecity.fraud import feeds
from safecity.fraud.features import (
    DAY,
    HOUR,
    RISKY_CALLER_IDS,
    AccountState,
    Evidence,
    NumberState,
    PersonState,
)
from safecity.fraud.scoring import (
    VICTIM_SIGNALS,
    NumberModel,
    Score,
    number_score,
    transfer_score,
    victim_score,
)
from safecity.platform.errors import InvalidInput

SUSPECT = 0.5
TIER_THRESHOLDS = (0.35, 0.55, 0.75)
TIER_ACTIONS = ("warn", "callback", "visit")
STOP_PAY = 0.6
BLOCK_PROPOSAL = 0.85
LIVE_CALL_CHECK = 120.0
LIVE_CALL_MAX = 3600.0
LOOK_BACK_CALL_S = 120.0
ENGAGED_CALL_S = 60.0  # a call this long counts as a conversation (REPEATED_CONTACT)
VICTIM_WINDOW = 72 * HOUR
TIER_RESET = 48 * HOUR
DEDUP_SIZE = 500_000
DOMAIN_SUSPECT_SENDERS = 3
MODEL_MIN_CALLS = 10
MODEL_EVERY_CALLS = 10
MODEL_EVERY_S = 300.0


@dataclass(frozen=True, slots=True)
class Decision:
    """What the engine asks for; ``subject`` is a pseudonym (person, number, account or
    domain), ``via`` the suspect identifier that led to it."""

    action: str
    subject: str
    at: float
    score: float
    reasons: tuple[str, ...]
    record_id: str
    via: str | None = None
    lat: float | None = None
    lng: float | None = None
    amount_cents: int | None = None
    sealed: str | None = None  # block proposals: the identifier, sealed for the reviewer


@dataclass
class EngineStats:
    events: int = 0
    duplicates: int = 0
    decisions: dict[str, int] = field(default_factory=dict)


def _t(value: Any) -> float:
    try:
        return datetime.fromisoformat(value).timestamp()
    except (TypeError, ValueError):
        raise InvalidInput(f"event time {str(value)[:40]!r} is not an ISO 8601 time") from None


class FraudEngine:
    def __init__(
        self,
        *,
        listed: Mapping[str, float] | None = None,
        model: NumberModel | None = None,
    ) -> None:
        self.numbers: dict[str, NumberState] = {}
        self.persons: dict[str, PersonState] = {}
        self.accounts: dict[str, AccountState] = {}
        self.listed: dict[str, float] = dict(listed or {})
        self.reported: dict[str, int] = {}
        self.model = model
        self.stats = EngineStats()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._live: list[tuple[float, str, str]] = []  # (due, callee, record id)
        self._domain_senders: dict[str, set[str]] = {}
        self._domain_sealed: dict[str, str] = {}
        self._proposed: set[str] = set()
        self._model_cache: dict[str, tuple[float, int, float]] = {}
        self.watermark = 0.0

    # ------------------------------------------------------------ block list

    def list_identifiers(self, entries: Iterable[tuple[str, float]]) -> None:
        for pseudonym, confidence in entries:
            self.listed[pseudonym] = confidence

    def unlist(self, pseudonym: str) -> None:
        self.listed.pop(pseudonym, None)

    # ------------------------------------------------------------ entry points

    def process(self, event_type: str, payload: Mapping[str, Any]) -> list[Decision]:
        """Apply one bus event; the decisions it caused (maybe none)."""
        key = (event_type, str(payload.get("record_id", "")))
        if key in self._seen:
            self.stats.duplicates += 1
            return []
        self._seen[key] = None
        if len(self._seen) > DEDUP_SIZE:
            self._seen.popitem(last=False)
        self.stats.events += 1
        t = _t(payload.get("time"))
        self.watermark = max(self.watermark, t)
        out: list[Decision] = []
        handler = _HANDLERS.get(event_type)
        if handler is None:
            raise InvalidInput(f"the fraud engine does not take {event_type!r} events")
        handler(self, payload, t, out)
        if self._live and self._live[0][0] <= self.watermark:
            out.extend(self.tick(self.watermark))
        for d in out:
            self.stats.decisions[d.action] = self.stats.decisions.get(d.action, 0) + 1
        return out

    def tick(self, now: float) -> list[Decision]:
        """Re-score calls still going :data:`LIVE_CALL_CHECK` after they began."""
        out: list[Decision] = []
        while self._live and self._live[0][0] <= now:
            due, callee, record_id = heapq.heappop(self._live)
            person = self.persons.get(callee)
            live = person.live_calls.pop(record_id, None) if person is not None else None
            if person is None or live is None:
                continue  # the call ended before the check
            caller, started = live
            s = self._number(caller, due, out=out, record_id=record_id)
            if s.value >= SUSPECT:
                self._evidence(person, due, "LIVE_CALL_WITH_SUSPECT", s.value, caller)
                self._decide(callee, person, due, record_id, out, via=caller)
            elif due - started < LIVE_CALL_MAX:  # look again later in the call
                person.live_calls[record_id] = live
                heapq.heappush(self._live, (due + LIVE_CALL_CHECK, callee, record_id))
        return out

    # ------------------------------------------------------------ helpers

    def _number_state(self, number: str, t: float) -> NumberState:
        state = self.numbers.get(number)
        if state is None:
            state = self.numbers[number] = NumberState(first_seen=t)
        return state

    def _person(self, pseudonym: str) -> PersonState:
        person = self.persons.get(pseudonym)
        if person is None:
            person = self.persons[pseudonym] = PersonState()
        return person

    def _number(
        self, number: str, t: float, *, out: list[Decision] | None = None, record_id: str = ""
    ) -> Score:
        """The number's score now; when it first crosses :data:`SUSPECT` (and ``out`` is
        given) its recent contacts get their evidence (:meth:`_look_back`)."""
        state = self.numbers.get(number)
        if state is None:
            listed = number in self.listed
            return Score(1.0 if listed else 0.0, ("LISTED",) if listed else ())
        state.reports = self.reported.get(number, 0)
        score = number_score(
            state,
            listed=number in self.listed,
            now=t,
            model_probability=self._model_probability(number, state, t),
        )
        if score.value >= SUSPECT and not state.suspect and out is not None:
            state.suspect = True
            self._look_back(number, state, score, t, record_id, out)
        return score

    def _model_probability(self, number: str, state: NumberState, t: float) -> float | None:
        """The trained number model's probability, re-computed only when the number has
        placed :data:`MODEL_EVERY_CALLS` more calls or :data:`MODEL_EVERY_S` passed (a
        model call costs more than all the rules together)."""
        if self.model is None or len(state.calls_1h) + len(state.ended) < MODEL_MIN_CALLS:
            return None
        calls = len(state.callees_24h) + len(state.ended)
        cached = self._model_cache.get(number)
        if (
            cached is not None
            and calls - cached[1] < MODEL_EVERY_CALLS
            and t - cached[0] < MODEL_EVERY_S
        ):
            return cached[2]
        probability = float(self.model(state.vector(t)))
        self._model_cache[number] = (t, calls, probability)
        return probability

    def _look_back(
        self,
        number: str,
        state: NumberState,
        score: Score,
        t: float,
        record_id: str,
        out: list[Decision],
    ) -> None:
        for at, who, code, length in state.contacts:
            if at < t - VICTIM_WINDOW:
                continue
            person = self._person(who)
            if code == "call":
                if length >= 600:
                    self._evidence(person, t, "VERY_LONG_CALL_WITH_SUSPECT", score.value, number)
                elif length >= 180:
                    self._evidence(person, t, "LONG_CALL_WITH_SUSPECT", score.value, number)
                else:
                    self._evidence(person, t, "CALL_FROM_SUSPECT", score.value, number)
            else:
                self._evidence(person, t, "SCAM_SMS", score.value, number)
            self._decide(who, person, t, record_id, out, via=number)

    def _evidence(self, person: PersonState, t: float, code: str, factor: float, via: str) -> None:
        person.add(Evidence(t, code, VICTIM_SIGNALS[code] * factor, via), VICTIM_WINDOW)

    def _decide(
        self,
        subject: str,
        person: PersonState,
        t: float,
        record_id: str,
        out: list[Decision],
        *,
        via: str | None,
    ) -> None:
        score = victim_score(person)
        tier = sum(1 for threshold in TIER_THRESHOLDS if score.value >= threshold)
        if person.tier and t - person.tier_at > TIER_RESET:
            person.tier = 0
        if tier <= person.tier:
            return
        person.tier, person.tier_at = tier, t
        out.append(
            Decision(
                action=TIER_ACTIONS[tier - 1],
                subject=subject,
                at=t,
                score=score.value,
                reasons=score.top_reasons,
                record_id=record_id,
                via=via,
                lat=person.lat,
                lng=person.lng,
            )
        )

    def _propose_block(
        self,
        kind: str,
        identifier: str,
        score: Score,
        t: float,
        record_id: str,
        out: list[Decision],
    ) -> None:
        if (
            score.value >= BLOCK_PROPOSAL
            and identifier not in self.listed
            and identifier not in self._proposed
        ):
            self._proposed.add(identifier)
            if kind == "number":
                state = self.numbers.get(identifier)
                sealed = state.sealed if state is not None else None
            else:
                sealed = self._domain_sealed.get(identifier)
            out.append(
                Decision(
                    f"block_{kind}",
                    identifier,
                    t,
                    score.value,
                    score.top_reasons,
                    record_id,
                    sealed=sealed,
                )
            )

    # ------------------------------------------------------------ handlers

    def _on_call(self, p: Mapping[str, Any], t: float, out: list[Decision]) -> None:
        caller, callee, record_id = p["caller"], p["callee"], p["record_id"]
        started = _t(p["started_at"])
        duration = p.get("duration_s")
        person = self._person(callee)
        if p.get("cell_lat") is not None and p.get("cell_lng") is not None:
            person.lat, person.lng = float(p["cell_lat"]), float(p["cell_lng"])
        if p.get("callee_age_band"):
            person.age_band = str(p["callee_age_band"])
        # an ended call whose start we never saw (an operator sending only finished
        # records) is counted as started here
        if duration is None or (feeds.CALL_STARTED, record_id) not in self._seen:
            self._call_started(p, caller, callee, started, record_id, person, out)
        if duration is None:
            return
        person.live_calls.pop(record_id, None)
        state = self._number_state(caller, started)
        state.ended.append(float(duration))
        if duration >= LOOK_BACK_CALL_S:
            state.contacts.append((t, callee, "call", float(duration)))
        if duration >= ENGAGED_CALL_S:
            person.contacts[caller] = person.contacts.get(caller, 0) + 1
        s = self._number(caller, t, out=out, record_id=record_id)
        if s.value >= SUSPECT:
            if duration >= 600:
                self._evidence(person, t, "VERY_LONG_CALL_WITH_SUSPECT", s.value, caller)
            elif duration >= 180:
                self._evidence(person, t, "LONG_CALL_WITH_SUSPECT", s.value, caller)
            self._decide(callee, person, t, record_id, out, via=caller)
        self._propose_block("number", caller, s, t, record_id, out)

    def _call_started(
        self,
        p: Mapping[str, Any],
        caller: str,
        callee: str,
        t: float,
        record_id: str,
        person: PersonState,
        out: list[Decision],
    ) -> None:
        state = self._number_state(caller, t)
        state.kind = str(p.get("caller_kind") or state.kind)
        state.sealed = p.get("caller_sealed") or state.sealed
        if p.get("caller_sim_age_days") is not None:
            state.sim_age_days = int(p["caller_sim_age_days"])
        if p.get("caller_id_type") in RISKY_CALLER_IDS:
            state.risky_caller_id = True
        state.call_out(t, callee)
        self._number_state(callee, t).call_in(t, caller)
        if p.get("duration_s") is None:
            person.live_calls[record_id] = (caller, t)
            heapq.heappush(self._live, (t + LIVE_CALL_CHECK, callee, record_id))
        s = self._number(caller, t, out=out, record_id=record_id)
        if s.value < SUSPECT:
            return
        listed = caller in self.listed
        self._evidence(
            person, t, "CALL_FROM_LISTED" if listed else "CALL_FROM_SUSPECT", s.value, caller
        )
        if person.contacts.get(caller, 0) >= 1:  # they talked before, and it calls again
            self._evidence(person, t, "REPEATED_CONTACT", s.value, caller)
        self._decide(callee, person, t, record_id, out, via=caller)

    def _on_sms(self, p: Mapping[str, Any], t: float, out: list[Decision]) -> None:
        sender, recipient, record_id = p["sender"], p["recipient"], p["record_id"]
        text_score = p.get("text_score")
        state = self._number_state(sender, t)
        state.sms_out(t, recipient, text_score)
        state.sealed = p.get("sender_sealed") or state.sealed
        domains: list[str] = list(p.get("domains") or [])
        for domain, sealed in zip(domains, p.get("domains_sealed") or [], strict=False):
            self._domain_sealed[domain] = sealed
        if domains:
            state.contacts.append((t, recipient, "sms", 0.0))
        s = self._number(sender, t, out=out, record_id=record_id)
        listed_domain = any(d in self.listed for d in domains)
        if s.value >= SUSPECT:
            for domain in domains:
                senders = self._domain_senders.setdefault(domain, set())
                senders.add(sender)
                if len(senders) >= DOMAIN_SUSPECT_SENDERS:
                    self._propose_block(
                        "domain",
                        domain,
                        Score(0.9, ("SPREAD_BY_SUSPECT_NUMBERS",)),
                        t,
                        record_id,
                        out,
                    )
        exposure = 1.0 if listed_domain else (s.value if s.value >= SUSPECT else 0.0)
        text = float(text_score or 0.0)
        if exposure > 0 or text >= SUSPECT:
            person = self._person(recipient)
            if exposure > 0:
                self._evidence(person, t, "SCAM_SMS", exposure, sender)
            if text >= SUSPECT:
                self._evidence(person, t, "SCAM_TEXT", text, sender)
            self._decide(recipient, person, t, record_id, out, via=sender)
        self._propose_block("number", sender, s, t, record_id, out)

    def _on_web(self, p: Mapping[str, Any], t: float, out: list[Decision]) -> None:
        subject, domain = p["subject"], p["domain"]
        person = self._person(subject)
        suspect_domain = domain in self.listed or len(self._domain_senders.get(domain, ())) > 0
        if p["kind"] == "app_install":
            code = "INSTALLED_FLAGGED_APP"
        else:
            code = "VISITED_LISTED_URL" if suspect_domain else "VISITED_FLAGGED_URL"
        self._evidence(person, t, code, 1.0, domain)
        self._decide(subject, person, t, p["record_id"], out, via=domain)

    def _on_transfer(self, p: Mapping[str, Any], t: float, out: list[Decision]) -> None:
        payee_id, person_id = p["payee"], p["payer_person"]
        payee = self.accounts.get(payee_id)
        if payee is None:
            payee = self.accounts[payee_id] = AccountState()
        payee.paid_by(t, p["payer"])
        person = self.persons.get(person_id)
        victim = victim_score(person) if person is not None else Score(0.0, ())
        score = transfer_score(
            victim=victim,
            payee=payee,
            payee_listed=payee_id in self.listed or self.reported.get(payee_id, 0) >= 2,
            new_payee=bool(p["new_payee"]),
            amount_cents=int(p["amount_cents"]),
        )
        if score.value >= STOP_PAY:
            out.append(
                Decision(
                    "stop_pay",
                    p["payer"],
                    t,
                    score.value,
                    score.top_reasons,
                    p["record_id"],
                    via=payee_id,
                    lat=person.lat if person else None,
                    lng=person.lng if person else None,
                    amount_cents=int(p["amount_cents"]),
                )
            )

    def _on_report(self, p: Mapping[str, Any], t: float, out: list[Decision]) -> None:
        for identifier in p["identifiers"]:
            self.reported[identifier] = self.reported.get(identifier, 0) + 1
            if identifier in self.numbers:
                self._number(identifier, t, out=out, record_id=p["record_id"])

    def _on_confirmed(self, p: Mapping[str, Any], t: float, out: list[Decision]) -> None:
        identifier = p["identifier"]
        self.listed[identifier] = 1.0
        if identifier in self.numbers:
            self._number(identifier, t, out=out, record_id=p["record_id"])


_HANDLERS = {
    feeds.CALL_STARTED: FraudEngine._on_call,
    feeds.CALL_ENDED: FraudEngine._on_call,
    feeds.SMS_SENT: FraudEngine._on_sms,
    feeds.WEB_FLAGGED: FraudEngine._on_web,
    feeds.TRANSFER_ATTEMPTED: FraudEngine._on_transfer,
    feeds.REPORT_FILED: FraudEngine._on_report,
    feeds.IDENTIFIER_CONFIRMED: FraudEngine._on_confirmed,
}

__all__ = ["DAY", "Decision", "EngineStats", "FraudEngine"]
