"""The per-city liability rule table: format, loading and validation.

Table format (YAML, one file per city under ``rules/``; ``rules/shanghai.yaml`` ships)
--------------------------------------------------------------------------------------
::

    city: shanghai                 # file stem, lower case
    version: "2026-11-1"           # recorded in every verdict
    name: {zh: 上海市, en: Shanghai}
    general_basis: 《道路交通安全法实施条例》第九十一条
    situations:                    # what a driver can tick (codes are [a-z_]+)
      - {code: rear_ending, zh: ..., en: ..., eas: [8], motion: moving, escalate: false}
    exclusive: [[parked, stationary, illegally_parked], ...]   # at most one per driver
    contradictions: [[rear_ending, reversing], ...]            # A's code, B's code, any order
    rules:
      - id: rear_end
        title: {zh: 追尾, en: Rear-end collision}
        party: [rear_ending]       # required, non-empty
        party_not: []              # optional
        other: []                  # optional; empty = any
        other_not: []              # optional
        eas: [8]                   # required, non-empty, EAS box-12 numbers 1..17
        basis: 《道路交通安全法》第四十三条   # "" when no article is cited with certainty
        dominates: [lane_change]   # optional rule ids

``eas`` refers to the 17 circumstances of box 12 of the European Accident Statement
(:data:`EAS_BOXES`); a situation may have none (EAS has no box for "going straight"); a
rule's boxes must be boxes of the situations it names. :meth:`RuleTable.from_mapping`
rejects unknown keys, unknown situation codes, duplicate codes or rule ids, boxes outside
1..17 and dominance cycles with :class:`~safecity.platform.errors.InvalidInput`.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from safecity.platform.errors import InvalidInput, NotFound

EAS_BOXES: Mapping[int, str] = {
    1: "parked / stationary",
    2: "leaving a parking place / opening a door",
    3: "entering a parking place",
    4: "emerging from a car park, from private grounds, from a track",
    5: "entering a car park, private grounds, a track",
    6: "entering a roundabout",
    7: "circulating in a roundabout",
    8: "striking the rear of the other vehicle while going in the same direction and lane",
    9: "going in the same direction but in a different lane",
    10: "changing lanes",
    11: "overtaking",
    12: "turning to the right",
    13: "turning to the left",
    14: "reversing",
    15: "encroaching on a lane reserved for traffic in the opposite direction",
    16: "coming from the right (at road junctions)",
    17: "disregarding a right of priority or a red light",
}

_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
_MOTIONS = frozenset({"stationary", "moving"})


@dataclass(frozen=True, slots=True)
class Situation:
    code: str
    zh: str
    en: str
    eas: tuple[int, ...]
    motion: str | None  # "stationary", "moving" or None (either)
    escalate: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title_zh: str
    title_en: str
    party: frozenset[str]
    eas: tuple[int, ...]
    basis: str = ""
    party_not: frozenset[str] = frozenset()
    other: frozenset[str] = frozenset()
    other_not: frozenset[str] = frozenset()
    dominates: frozenset[str] = frozenset()

    def fires(self, own: frozenset[str], others: frozenset[str]) -> bool:
        """Whether a party with situations ``own``, facing ``others``, is at fault here."""
        return (
            not self.party.isdisjoint(own)
            and self.party_not.isdisjoint(own)
            and (not self.other or not self.other.isdisjoint(others))
            and self.other_not.isdisjoint(others)
        )


@dataclass(frozen=True)
class RuleTable:
    city: str
    version: str
    name_zh: str
    name_en: str
    general_basis: str
    situations: Mapping[str, Situation]
    rules: tuple[Rule, ...]
    exclusive: tuple[frozenset[str], ...] = ()
    contradictions: frozenset[frozenset[str]] = frozenset()
    #: rule id -> ids it outweighs, transitive closure of ``dominates``
    outweighs: Mapping[str, frozenset[str]] = field(default_factory=dict)

    # ---- loading -------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<table>") -> RuleTable:
        """Validate a parsed YAML document; raise InvalidInput naming the first problem."""
        return _parse_table(data, source)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<yaml>") -> RuleTable:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{source}: not valid YAML: {exc}".splitlines()[0]) from exc
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> RuleTable:
        p = Path(path)
        return cls.from_yaml(p.read_text("utf-8"), source=p.name)

    @staticmethod
    def shipped_cities() -> list[str]:
        folder = importlib.resources.files("safecity.accidents").joinpath("rules")
        return sorted(
            f.name.removesuffix(".yaml") for f in folder.iterdir() if f.name.endswith(".yaml")
        )

    @staticmethod
    @functools.cache
    def shipped(city: str = "shanghai") -> RuleTable:
        """The table shipped in the package for ``city`` (parsed once, then cached)."""
        if not _CODE.match(city) or city not in RuleTable.shipped_cities():
            raise NotFound(f"no liability rule table for city {city!r}")
        res = importlib.resources.files("safecity.accidents").joinpath("rules", f"{city}.yaml")
        return RuleTable.from_yaml(res.read_text("utf-8"), source=f"rules/{city}.yaml")

    # ---- helpers for the service layer ------------------------------------------
    def check_codes(self, codes: Iterable[str]) -> None:
        """Raise InvalidInput for codes not in the table (use at the API boundary)."""
        unknown = sorted(set(codes) - self.situations.keys())
        if unknown:
            raise InvalidInput(f"unknown situation code(s) for {self.city}: {', '.join(unknown)}")

    def eas_boxes(self, codes: Iterable[str]) -> tuple[int, ...]:
        """The EAS box-12 numbers a driver's situations tick (for an EAS-style form)."""
        boxes = {b for c in codes if c in self.situations for b in self.situations[c].eas}
        return tuple(sorted(boxes))


# ---- table validation ------------------------------------------------------------------
_TOP_KEYS = {
    "city",
    "version",
    "name",
    "general_basis",
    "situations",
    "exclusive",
    "contradictions",
    "rules",
}
_SITUATION_KEYS = {"code", "zh", "en", "eas", "motion", "escalate"}
_RULE_KEYS = {
    "id",
    "title",
    "party",
    "party_not",
    "other",
    "other_not",
    "eas",
    "basis",
    "dominates",
}


def _fail(where: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{where}: {problem}")


def _mapping(value: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "expected a mapping")
    extra = sorted(set(value) - allowed)
    if extra:
        raise _fail(where, f"unknown key(s) {', '.join(map(str, extra))}")
    missing = sorted(required - set(value))
    if missing:
        raise _fail(where, f"missing key(s) {', '.join(missing)}")
    return value


def _text(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _fail(where, "expected a non-empty string" if not empty else "expected a string")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(where, "expected a list")
    return value


def _boxes(value: Any, where: str, *, required: bool) -> tuple[int, ...]:
    boxes = _list(value, where)
    for box in boxes:
        if isinstance(box, bool) or not isinstance(box, int) or box not in EAS_BOXES:
            raise _fail(where, f"EAS box {box!r} does not exist (box 12 has circumstances 1-17)")
    if required and not boxes:
        raise _fail(where, "needs at least one EAS box")
    if len(set(boxes)) != len(boxes):
        raise _fail(where, "repeats an EAS box")
    return tuple(sorted(boxes))


def _codes(value: Any, where: str, known: Mapping[str, Situation]) -> frozenset[str]:
    codes = _list(value, where)
    for code in codes:
        if code not in known:
            raise _fail(where, f"unknown situation code {code!r}")
    return frozenset(codes)


def _titles(value: Any, where: str) -> tuple[str, str]:
    titles = _mapping(value, where, {"zh", "en"}, {"zh", "en"})
    return _text(titles["zh"], f"{where}.zh"), _text(titles["en"], f"{where}.en")


def _parse_situations(items: Any, source: str) -> dict[str, Situation]:
    situations: dict[str, Situation] = {}
    for i, item in enumerate(_list(items, f"{source}: situations")):
        where = f"{source}: situations[{i}]"
        s = _mapping(item, where, _SITUATION_KEYS, {"code", "zh", "en", "eas"})
        code = _text(s["code"], f"{where}.code")
        where = f"{source}: situation {code!r}"
        if not _CODE.match(code):
            raise _fail(where, "codes are lower-case letters, digits and _")
        if code in situations:
            raise _fail(where, "duplicate situation code")
        motion = s.get("motion")
        if motion is not None and motion not in _MOTIONS:
            raise _fail(where, f"motion must be one of {sorted(_MOTIONS)}")
        escalate = s.get("escalate", False)
        if not isinstance(escalate, bool):
            raise _fail(where, "escalate must be true or false")
        situations[code] = Situation(
            code,
            _text(s["zh"], where),
            _text(s["en"], where),
            _boxes(s["eas"], f"{where}.eas", required=False),
            motion,
            escalate,
        )
    if not situations:
        raise _fail(source, "no situations")
    return situations


def _parse_rule(item: Any, i: int, source: str, known: Mapping[str, Situation]) -> Rule:
    r = _mapping(item, f"{source}: rules[{i}]", _RULE_KEYS, {"id", "title", "party", "eas"})
    rid = _text(r["id"], f"{source}: rules[{i}].id")
    where = f"{source}: rule {rid!r}"
    if not _CODE.match(rid):
        raise _fail(where, "rule ids are lower-case letters, digits and _")
    zh, en = _titles(r["title"], f"{where}.title")
    party = _codes(r["party"], f"{where}.party", known)
    if not party:
        raise _fail(where, "party needs at least one situation code")
    other = _codes(r.get("other"), f"{where}.other", known)
    eas = _boxes(r["eas"], f"{where}.eas", required=True)
    named = {b for c in party | other for b in known[c].eas}
    stray = sorted(set(eas) - named)
    if stray:
        raise _fail(where, f"EAS box(es) {stray} belong to none of the situations it names")
    dominates = _list(r.get("dominates"), f"{where}.dominates")
    return Rule(
        id=rid,
        title_zh=zh,
        title_en=en,
        party=party,
        eas=eas,
        basis=_text(r.get("basis", ""), f"{where}.basis", empty=True),
        party_not=_codes(r.get("party_not"), f"{where}.party_not", known),
        other=other,
        other_not=_codes(r.get("other_not"), f"{where}.other_not", known),
        dominates=frozenset(_text(d, f"{where}.dominates") for d in dominates),
    )


def _closure(rules: tuple[Rule, ...], source: str) -> dict[str, frozenset[str]]:
    direct = {r.id: r.dominates for r in rules}
    closure: dict[str, frozenset[str]] = {}
    for rid in direct:
        seen: set[str] = set()
        stack = list(direct[rid])
        while stack:
            nxt = stack.pop()
            if nxt not in seen:
                seen.add(nxt)
                stack.extend(direct[nxt])
        if rid in seen:
            raise _fail(f"{source}: rule {rid!r}", "dominance cycle (a rule outweighs itself)")
        closure[rid] = frozenset(seen)
    return closure


def _parse_table(data: Any, source: str) -> RuleTable:
    top = _mapping(data, source, _TOP_KEYS, {"city", "version", "name", "situations", "rules"})
    city = _text(top["city"], f"{source}: city")
    if not _CODE.match(city):
        raise _fail(f"{source}: city", "lower-case letters, digits and _")
    version = top["version"]
    if not isinstance(version, str | int) or isinstance(version, bool):
        raise _fail(f"{source}: version", "expected a string")
    name_zh, name_en = _titles(top["name"], f"{source}: name")
    known = _parse_situations(top["situations"], source)
    exclusive = tuple(
        _codes(g, f"{source}: exclusive[{i}]", known)
        for i, g in enumerate(_list(top.get("exclusive"), f"{source}: exclusive"))
    )
    pairs = []
    for i, pair in enumerate(_list(top.get("contradictions"), f"{source}: contradictions")):
        where = f"{source}: contradictions[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            raise _fail(where, "expected a pair [code_a, code_b]")
        pairs.append(_codes(pair, where, known))
    rules = tuple(
        _parse_rule(item, i, source, known)
        for i, item in enumerate(_list(top["rules"], f"{source}: rules"))
    )
    if not rules:
        raise _fail(source, "no rules")
    ids = [r.id for r in rules]
    dupes = sorted({x for x in ids if ids.count(x) > 1})
    if dupes:
        raise _fail(source, f"duplicate rule id(s) {', '.join(dupes)}")
    for r in rules:
        missing = sorted(r.dominates - set(ids))
        if missing:
            raise _fail(f"{source}: rule {r.id!r}.dominates", f"unknown rule id(s) {missing}")
    return RuleTable(
        city=city,
        version=str(version),
        name_zh=name_zh,
        name_en=name_en,
        general_basis=_text(top.get("general_basis", ""), f"{source}: general_basis", empty=True),
        situations=MappingProxyType(known),  # read-only: shipped tables are shared
        rules=rules,
        exclusive=exclusive,
        contradictions=frozenset(pairs),
        outweighs=MappingProxyType(_closure(rules, source)),
    )
