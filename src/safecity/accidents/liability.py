"""Liability for minor accidents from a per-city rule table ("快处易赔", issue 11 item 2).

Two drivers each describe the collision on their phone: the situations they were in
themselves, and their confirmation of the other driver's situations (two
:class:`Declaration`\\ s). :func:`decide` turns the pair into a :class:`Verdict`; pure, no
database, deterministic, and it never raises on any pair of declarations::

    table = RuleTable.shipped("shanghai")
    a = Declaration.of(own=["rear_ending"], other=["stationary"])
    b = Declaration.of(own=["stationary"], other=["rear_ending"])
    verdict = decide(table, a, b)       # A 100 %, B 0 %, fired rule "rear_end"

Semantics
---------
* The accounts must agree: A's ``own`` equals B's ``other`` and B's ``own`` equals A's
  ``other``. Otherwise, or when an account is empty, names an unknown code, is incoherent
  (two codes of one ``exclusive`` group, or stationary and moving codes together), hits a
  ``contradictions`` pair, or uses a situation marked ``escalate``, the outcome is
  ``ESCALATE`` with a reason: an officer decides. Nothing outside the table is decided.
* A rule *fires* against a party when that party declared any of ``party`` and none of
  ``party_not``, while the other party declared any of ``other`` (empty: anything) and none
  of ``other_not``. No rule fires: ``ESCALATE`` (``no_rule``).
* Rules fire against one party only: that party is fully liable (100/0). Against both:
  equal shares (50/50), unless every rule against one party is outweighed by a rule
  against the other (``dominates``, taken transitively), which makes the other party
  fully liable. Swapping A and B swaps the shares.

The table format is documented in :mod:`safecity.accidents.liability_table`; the shipped
Shanghai table is ``rules/shanghai.yaml`` in this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from safecity.accidents.liability_table import EAS_BOXES, Rule, RuleTable, Situation

__all__ = [
    "EAS_BOXES",
    "Declaration",
    "Escalation",
    "EscalationReason",
    "FiredRule",
    "Outcome",
    "Party",
    "Rule",
    "RuleTable",
    "Situation",
    "Verdict",
    "decide",
]


class Party(StrEnum):
    A = "A"
    B = "B"

    @property
    def other(self) -> Party:
        return Party.B if self is Party.A else Party.A


class Outcome(StrEnum):
    A_LIABLE = "a_liable"  # A 100 %, B 0 %
    B_LIABLE = "b_liable"  # A 0 %, B 100 %
    EQUAL = "equal"  # 50/50
    ESCALATE = "escalate"  # an officer decides


class EscalationReason(StrEnum):
    UNKNOWN_SITUATION = "unknown_situation"
    EMPTY_ACCOUNT = "empty_account"
    ACCOUNTS_DISAGREE = "accounts_disagree"
    INCOHERENT_ACCOUNT = "incoherent_account"
    CONTRADICTORY_ACCOUNTS = "contradictory_accounts"
    OFFICER_REQUIRED = "officer_required"
    NO_RULE = "no_rule"


#: One message per reason, Chinese and English (keys for translation, as elsewhere).
ESCALATION_MESSAGES: Mapping[EscalationReason, tuple[str, str]] = {
    EscalationReason.UNKNOWN_SITUATION: (
        "选择了规则表中没有的情形",
        "a situation is not in the table",
    ),
    EscalationReason.EMPTY_ACCOUNT: ("一方未选择任何情形", "a driver selected no situation"),
    EscalationReason.ACCOUNTS_DISAGREE: ("双方陈述不一致", "the two accounts disagree"),
    EscalationReason.INCOHERENT_ACCOUNT: ("一方所选情形互相矛盾", "one account is incoherent"),
    EscalationReason.CONTRADICTORY_ACCOUNTS: (
        "双方情形不能同时成立或须民警认定",
        "the two situations cannot both hold or are left to an officer",
    ),
    EscalationReason.OFFICER_REQUIRED: ("所选情形须由民警认定", "a situation needs an officer"),
    EscalationReason.NO_RULE: ("规则表中没有适用的规则", "no rule of the table applies"),
}


@dataclass(frozen=True, slots=True)
class Declaration:
    """One driver's account: their own situations and those they confirm of the other."""

    own: frozenset[str]
    other: frozenset[str]

    @classmethod
    def of(cls, *, own: Iterable[str], other: Iterable[str]) -> Declaration:
        return cls(own=frozenset(own), other=frozenset(other))


@dataclass(frozen=True, slots=True)
class FiredRule:
    """A rule that fired against ``party``; ``outweighed`` when a dominating rule won."""

    rule_id: str
    party: Party
    title_zh: str
    title_en: str
    basis: str
    eas: tuple[int, ...]
    outweighed: bool = False


@dataclass(frozen=True, slots=True)
class Escalation:
    reason: EscalationReason
    detail: str  # English, names codes and parties; for the officer and the log

    @property
    def message_zh(self) -> str:
        return ESCALATION_MESSAGES[self.reason][0]

    @property
    def message_en(self) -> str:
        return ESCALATION_MESSAGES[self.reason][1]


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    share_a: int | None  # percent of liability, None when escalated
    share_b: int | None
    city: str
    table_version: str
    fired: tuple[FiredRule, ...] = ()
    escalation: Escalation | None = None

    @property
    def decided(self) -> bool:
        return self.outcome is not Outcome.ESCALATE

    def swapped(self) -> Verdict:
        """The same verdict with the parties' names exchanged."""
        outcome = {Outcome.A_LIABLE: Outcome.B_LIABLE, Outcome.B_LIABLE: Outcome.A_LIABLE}.get(
            self.outcome, self.outcome
        )
        flipped = (replace(f, party=f.party.other) for f in self.fired)
        fired = tuple(sorted(flipped, key=lambda f: f.party))  # A's rules first, as decide()
        return replace(
            self, outcome=outcome, share_a=self.share_b, share_b=self.share_a, fired=fired
        )

    def explain(self, lang: str = "zh") -> list[str]:
        """Human-readable lines: the outcome, then each rule that fired with its basis."""
        zh = lang == "zh"
        if self.escalation is not None:
            msg = self.escalation.message_zh if zh else self.escalation.message_en
            return [
                f"{'转民警处理' if zh else 'Escalated to an officer'}: {msg}",
                self.escalation.detail,
            ]
        lines = [f"A {self.share_a}% / B {self.share_b}%"]
        for f in self.fired:
            title = f.title_zh if zh else f.title_en
            note = (" (被优先规则吸收)" if zh else " (outweighed)") if f.outweighed else ""
            basis = f" — {f.basis}" if f.basis else ""
            lines.append(f"{f.party}: [{f.rule_id}] {title}{basis}{note}")
        return lines


def _incoherence(table: RuleTable, codes: frozenset[str]) -> str | None:
    for group in table.exclusive:
        both = sorted(codes & group)
        if len(both) > 1:
            return f"exclusive situations together: {', '.join(both)}"
    motions = {table.situations[c].motion for c in codes} - {None}
    if len(motions) > 1:
        return "stationary and moving situations together"
    return None


def decide(table: RuleTable, a: Declaration, b: Declaration) -> Verdict:
    """The verdict for drivers A and B under ``table``; never raises for any input sets."""

    def escalate(reason: EscalationReason, detail: str) -> Verdict:
        return Verdict(
            Outcome.ESCALATE, None, None, table.city, table.version, (), Escalation(reason, detail)
        )

    known = table.situations.keys()
    unknown = sorted((a.own | a.other | b.own | b.other) - known)
    if unknown:
        return escalate(EscalationReason.UNKNOWN_SITUATION, f"unknown codes: {', '.join(unknown)}")
    empty = [p for p, d in ((Party.A, a), (Party.B, b)) if not d.own]
    if empty:
        return escalate(EscalationReason.EMPTY_ACCOUNT, f"no situation from {' and '.join(empty)}")
    problems = []
    for who, own, confirmed in ((Party.A, a.own, b.other), (Party.B, b.own, a.other)):
        if own != confirmed:
            problems.append(
                f"{who} declared {sorted(own)}, {who.other} confirmed {sorted(confirmed)}"
            )
    if problems:
        return escalate(EscalationReason.ACCOUNTS_DISAGREE, "; ".join(problems))
    for who, own in ((Party.A, a.own), (Party.B, b.own)):
        problem = _incoherence(table, own)
        if problem:
            return escalate(EscalationReason.INCOHERENT_ACCOUNT, f"{who}: {problem}")
    clashes = sorted(
        f"{x}/{y}" for x in a.own for y in b.own if frozenset((x, y)) in table.contradictions
    )
    if clashes:
        return escalate(EscalationReason.CONTRADICTORY_ACCOUNTS, f"A/B: {', '.join(clashes)}")
    flagged = sorted(c for c in a.own | b.own if table.situations[c].escalate)
    if flagged:
        return escalate(EscalationReason.OFFICER_REQUIRED, f"situations: {', '.join(flagged)}")

    against_a = [r for r in table.rules if r.fires(a.own, b.own)]
    against_b = [r for r in table.rules if r.fires(b.own, a.own)]
    if not against_a and not against_b:
        return escalate(
            EscalationReason.NO_RULE, f"A {sorted(a.own)} vs B {sorted(b.own)}: no rule applies"
        )

    def outweighed(losers: list[Rule], winners: list[Rule]) -> bool:
        return bool(winners) and all(
            any(loser.id in table.outweighs.get(w.id, ()) for w in winners) for loser in losers
        )

    if not against_b or outweighed(against_b, against_a):
        outcome, share_a, share_b = Outcome.A_LIABLE, 100, 0
    elif not against_a or outweighed(against_a, against_b):
        outcome, share_a, share_b = Outcome.B_LIABLE, 0, 100
    else:
        outcome, share_a, share_b = Outcome.EQUAL, 50, 50

    def fired(rules: list[Rule], party: Party, lost: bool) -> list[FiredRule]:
        return [
            FiredRule(r.id, party, r.title_zh, r.title_en, r.basis, r.eas, outweighed=lost)
            for r in rules
        ]

    return Verdict(
        outcome,
        share_a,
        share_b,
        table.city,
        table.version,
        tuple(
            fired(against_a, Party.A, outcome is Outcome.B_LIABLE)
            + fired(against_b, Party.B, outcome is Outcome.A_LIABLE)
        ),
    )
