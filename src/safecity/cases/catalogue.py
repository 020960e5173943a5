"""The case-type catalogue and its disclosure policy (which types the portal may show)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CaseType:
    code: str
    name_zh: str
    name_en: str
    disclosed: bool


CATALOGUE: dict[str, CaseType] = {
    t.code: t
    for t in (
        CaseType("theft", "盗窃", "Theft", True),
        CaseType("fraud", "诈骗", "Fraud", True),
        CaseType("robbery", "抢劫", "Robbery", True),
        CaseType("assault", "故意伤害", "Assault", True),
        CaseType("traffic", "交通事故", "Traffic accident", True),
        CaseType("damage", "故意毁坏财物", "Criminal damage", True),
        CaseType("other", "其他", "Other", True),
        # Never disclosed in the portal, whatever the victim wants.
        CaseType("sexual_offence", "性侵害", "Sexual offence", False),
        CaseType("minor", "涉未成年人", "Involving a minor", False),
        CaseType("domestic_violence", "家庭暴力", "Domestic violence", False),
        CaseType("covert", "秘密侦查", "Covert investigation", False),
    )
}
CODES: tuple[str, ...] = tuple(CATALOGUE)


def disclosed(case_type: str, *, victim_opt_out: bool, override: bool | None = None) -> bool:
    """Whether the portal may show a case of ``case_type`` at all: the victim's opt-out
    always wins; else a supervisor's override; else the type's policy."""
    kind = CATALOGUE.get(case_type)
    if kind is None or victim_opt_out:
        return False
    return kind.disclosed if override is None else override


def case_disclosed(case: Any) -> bool:
    """:func:`disclosed` for a case row."""
    return disclosed(
        case.case_type,
        victim_opt_out=case.victim_opt_out,
        override=case.disclosure_override,
    )
