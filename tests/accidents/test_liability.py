"""Liability rules: the shipped Shanghai table, the hand-written verdict fixture, the
semantics (agreement, dominance, symmetry) and the table validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.accidents.liability import (
    EAS_BOXES,
    Declaration,
    EscalationReason,
    Outcome,
    Party,
    RuleTable,
    Verdict,
    decide,
)
from safecity.platform.errors import InvalidInput, NotFound

CASES = Path(__file__).with_name("liability_cases.yaml")
TABLE = RuleTable.shipped("shanghai")
SHARES = {"a_liable": (100, 0), "b_liable": (0, 100), "equal": (50, 50), "escalate": (None, None)}


def _case_verdict(case: dict[str, Any]) -> Verdict:
    a = Declaration.of(own=case["a"], other=case.get("a_confirms_b", case["b"]))
    b = Declaration.of(own=case["b"], other=case.get("b_confirms_a", case["a"]))
    return decide(TABLE, a, b)


def _fixture() -> list[dict[str, Any]]:
    data = yaml.safe_load(CASES.read_text("utf-8"))
    assert data["city"] == "shanghai"
    cases: list[dict[str, Any]] = data["cases"]
    return cases


@pytest.mark.parametrize("case", _fixture(), ids=lambda c: c["id"])
def test_fixture_verdicts(case: dict[str, Any]) -> None:
    verdict = _case_verdict(case)
    expect = case["expect"]
    assert verdict.outcome == Outcome(expect["outcome"])
    assert (verdict.share_a, verdict.share_b) == SHARES[expect["outcome"]]
    if expect["outcome"] == "escalate":
        assert verdict.escalation is not None
        assert verdict.escalation.reason == EscalationReason(expect["reason"])
        assert verdict.fired == ()
    else:
        assert verdict.escalation is None
        for party in ("A", "B"):
            got = sorted(f.rule_id for f in verdict.fired if f.party == party)
            assert got == sorted(expect.get(party, [])), party


def test_fixture_is_large_and_covers_every_rule_and_reason() -> None:
    cases = _fixture()
    assert len(cases) >= 40
    assert len({c["id"] for c in cases}) == len(cases)
    fired = {r for c in cases for p in ("A", "B") for r in c["expect"].get(p, [])}
    assert fired == {r.id for r in TABLE.rules}
    reasons = {c["expect"]["reason"] for c in cases if c["expect"]["outcome"] == "escalate"}
    assert reasons == {r.value for r in EscalationReason}


def test_verdict_explains_rule_and_basis() -> None:
    a = Declaration.of(own=["reversing"], other=["parked"])
    b = Declaration.of(own=["parked"], other=["reversing"])
    verdict = decide(TABLE, a, b)
    rev = next(f for f in verdict.fired if f.rule_id == "reversing")
    assert rev.party is Party.A
    assert rev.title_zh == "倒车未确认安全"
    assert rev.basis == "《道路交通安全法实施条例》第五十条"
    assert rev.eas == (14,)
    assert verdict.city == "shanghai"
    assert verdict.table_version == TABLE.version
    assert verdict.explain("zh")[0] == "A 100% / B 0%"
    assert "Reversing" in verdict.explain("en")[1]


def test_outweighed_rules_are_marked() -> None:
    a = Declaration.of(own=["straight", "red_light"], other=["turning_left"])
    b = Declaration.of(own=["turning_left"], other=["straight", "red_light"])
    verdict = decide(TABLE, a, b)
    assert verdict.outcome is Outcome.A_LIABLE
    flags = {(f.party, f.rule_id): f.outweighed for f in verdict.fired}
    assert flags == {(Party.A, "red_light"): False, (Party.B, "turn_yield_straight"): True}


def test_disagreement_detail_names_both_sides() -> None:
    a = Declaration.of(own=["straight"], other=["changing_lanes"])
    b = Declaration.of(own=["straight"], other=["straight"])
    verdict = decide(TABLE, a, b)
    assert verdict.escalation is not None
    assert verdict.escalation.message_zh == "双方陈述不一致"
    assert "B declared ['straight'], A confirmed ['changing_lanes']" in verdict.escalation.detail
    assert verdict.explain("en")[0].startswith("Escalated to an officer")


# ---- properties ----------------------------------------------------------------------
CODES = sorted(TABLE.situations)
code_sets = st.frozensets(st.sampled_from([*CODES, "not_a_code"]), max_size=4)
own_sets = st.frozensets(st.sampled_from(CODES), min_size=1, max_size=3)


@settings(max_examples=400, deadline=None)
@given(a_own=code_sets, a_other=code_sets, b_own=code_sets, b_other=code_sets)
def test_any_declarations_give_verdict_and_swap_symmetric(
    a_own: frozenset[str], a_other: frozenset[str], b_own: frozenset[str], b_other: frozenset[str]
) -> None:
    a, b = Declaration(a_own, a_other), Declaration(b_own, b_other)
    verdict = decide(TABLE, a, b)
    swapped = decide(TABLE, b, a)
    assert (verdict.share_a, verdict.share_b) in set(SHARES.values())
    assert verdict.decided == (verdict.escalation is None)
    assert swapped.share_a == verdict.share_b
    assert swapped.share_b == verdict.share_a
    assert swapped == verdict.swapped() or swapped.escalation is not None
    if verdict.escalation is not None:
        assert swapped.escalation is not None
        assert swapped.escalation.reason == verdict.escalation.reason


@settings(max_examples=400, deadline=None)
@given(a_own=own_sets, b_own=own_sets)
def test_agreeing_accounts_decide_only_from_the_table(
    a_own: frozenset[str], b_own: frozenset[str]
) -> None:
    verdict = decide(TABLE, Declaration(a_own, b_own), Declaration(b_own, a_own))
    assert verdict.escalation is None or verdict.escalation.reason not in {
        EscalationReason.ACCOUNTS_DISAGREE,
        EscalationReason.UNKNOWN_SITUATION,
        EscalationReason.EMPTY_ACCOUNT,
    }
    if verdict.decided:
        assert verdict.fired, "a decision always names the rule(s) that fired"
        liable = {
            Outcome.A_LIABLE: {Party.A},
            Outcome.B_LIABLE: {Party.B},
            Outcome.EQUAL: {Party.A, Party.B},
        }[verdict.outcome]
        assert {f.party for f in verdict.fired if not f.outweighed} == liable
        assert {f.rule_id for f in verdict.fired} <= {r.id for r in TABLE.rules}


# ---- the shipped table ---------------------------------------------------------------
def test_shipped_table_maps_everything_to_eas_boxes() -> None:
    assert RuleTable.shipped_cities() == ["shanghai"]
    for s in TABLE.situations.values():
        assert set(s.eas) <= set(EAS_BOXES)
    for r in TABLE.rules:
        assert r.eas
        assert set(r.eas) <= set(EAS_BOXES)
    covered = {b for s in TABLE.situations.values() for b in s.eas}
    assert covered == set(EAS_BOXES) - {9}  # box 9: "same direction, other lane"; see YAML
    assert TABLE.eas_boxes(["turning_left", "red_light", "straight"]) == (13, 17)


def test_check_codes_and_unknown_city() -> None:
    TABLE.check_codes(["straight", "parked"])
    with pytest.raises(InvalidInput, match="unknown situation code"):
        TABLE.check_codes(["straight", "drifting"])
    with pytest.raises(NotFound):
        RuleTable.shipped("atlantis")


# ---- validation ----------------------------------------------------------------------
RAW = yaml.safe_load(
    (Path(__file__).parents[2] / "src/safecity/accidents/rules/shanghai.yaml").read_text("utf-8")
)


def _broken(edit: Any) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(RAW)
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["rules"][0]["party"].append("flying"), "unknown situation code 'flying'"),
        (lambda d: d["rules"].append(copy.deepcopy(d["rules"][0])), "duplicate rule id"),
        (lambda d: d["rules"][0].update(eas=[18]), "EAS box 18 does not exist"),
        (lambda d: d["rules"][0].update(eas=[0]), "EAS box 0 does not exist"),
        (lambda d: d["situations"][0].update(eas=[99]), "EAS box 99 does not exist"),
        (lambda d: d["rules"][0].update(eas=[]), "needs at least one EAS box"),
        (lambda d: d["rules"][0].update(eas=[3]), "belong to none of the situations"),
        (lambda d: d["situations"].append(dict(d["situations"][0])), "duplicate situation"),
        (lambda d: d["rules"][0].update(dominates=["nope"]), "unknown rule id"),
        (lambda d: d["rules"][0].update(colour="red"), "unknown key(s) colour"),
        (lambda d: d["exclusive"].append(["parked", "hovering"]), "unknown situation code"),
        (lambda d: d["contradictions"].append(["parked"]), "expected a pair"),
        (lambda d: d["situations"][0].update(motion="sideways"), "motion must be"),
        (lambda d: d["rules"][0].pop("title"), "missing key(s) title"),
    ],
)
def test_invalid_tables_are_rejected(edit: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        RuleTable.from_mapping(_broken(edit), source="test.yaml")


def test_dominance_cycle_is_rejected() -> None:
    def edit(d: dict[str, Any]) -> None:
        rules = {r["id"]: r for r in d["rules"]}
        rules["lane_change"]["dominates"] = ["red_light"]  # red_light already outweighs it

    with pytest.raises(InvalidInput, match="dominance cycle"):
        RuleTable.from_mapping(_broken(edit), source="test.yaml")


def test_bad_yaml_is_one_clear_line() -> None:
    with pytest.raises(InvalidInput, match=r"^x.yaml: not valid YAML") as info:
        RuleTable.from_yaml("rules: [unclosed", source="x.yaml")
    assert "\n" not in str(info.value)


def test_dominance_makes_the_other_party_liable_in_a_custom_table() -> None:
    data = copy.deepcopy(RAW)
    for r in data["rules"]:
        if r["id"] == "u_turn":
            r["dominates"] = ["rear_end"]
    table = RuleTable.from_mapping(data, source="custom.yaml")
    a = Declaration.of(own=["u_turn"], other=["rear_ending"])
    b = Declaration.of(own=["rear_ending"], other=["u_turn"])
    assert decide(TABLE, a, b).outcome is Outcome.EQUAL
    assert decide(table, a, b).outcome is Outcome.A_LIABLE
