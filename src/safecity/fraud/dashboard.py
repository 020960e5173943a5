"""The anti-fraud dashboard's numbers: the seeds' four counters and the burden metrics,
by district and ISO week.

- **numbers shut** and **sites blocked**: block-list entries (phones, domains) that went
  active in the week (city-wide: an entry belongs to no district);
- **money frozen**: the amounts of stop-pay requests closed as ``money_frozen``;
- **people dissuaded**: distinct people whose warning, call-back or visit closed as
  ``dissuaded``;
- **warnings per true victim**: warning actions sent to people later confirmed as targets
  (closed ``dissuaded`` or ``victim_lost_money``), divided by those people;
- **repeat warnings per person**: warning actions divided by distinct people warned.

Districts come from the coarse cell of each action (the district whose area holds the
cell's centre); actions without a place count for the city only. Only counts and sums
leave this module — never a pseudonym.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.fraud.models import WARNING_ACTIONS, Action, Indicator
from safecity.orgs import service as orgs
from safecity.platform import geo
from safecity.platform.db import utcnow
from safecity.security.rbac import Principal

TRUE_TARGET = ("dissuaded", "victim_lost_money")
CITY = "city"


@dataclass
class Counters:
    numbers_shut: int = 0
    sites_blocked: int = 0
    money_frozen_cents: int = 0
    people_dissuaded: int = 0
    warnings: int = 0
    people_warned: int = 0
    true_targets: int = 0
    warnings_to_true_targets: int = 0

    @property
    def warnings_per_true_victim(self) -> float | None:
        return (
            round(self.warnings_to_true_targets / self.true_targets, 2)
            if self.true_targets
            else None
        )

    @property
    def repeat_warnings_per_person(self) -> float | None:
        return round(self.warnings / self.people_warned, 2) if self.people_warned else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "numbers_shut": self.numbers_shut,
            "sites_blocked": self.sites_blocked,
            "money_frozen_cny": round(self.money_frozen_cents / 100, 2),
            "people_dissuaded": self.people_dissuaded,
            "warnings": self.warnings,
            "warnings_per_true_victim": self.warnings_per_true_victim,
            "repeat_warnings_per_person": self.repeat_warnings_per_person,
        }


@dataclass
class Dashboard:
    weeks: list[str]
    totals: dict[str, Any]
    by_week: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_district: dict[str, dict[str, Any]] = field(default_factory=dict)


def week_of(value: datetime) -> str:
    year, week, _ = value.isocalendar()
    return f"{year}-W{week:02d}"


def _district_of(session: Session, cell: str | None, cache: dict[str | None, str]) -> str:
    if cell not in cache:
        name = CITY
        if cell is not None:
            centre = geo.h3_cell_center(cell)
            district = orgs.org_for_point(
                session=session, lat=centre.lat, lng=centre.lng, kind="district"
            )
            name = district.id if district is not None else CITY
        cache[cell] = name
    return cache[cell]


def build(
    *, session: Session, principal: Principal, weeks: int = 8, now: datetime | None = None
) -> Dashboard:
    """Counters for the last ``weeks`` ISO weeks (city-wide roles see every district; the
    numbers are aggregates, so an analyst's scope does not narrow them)."""
    now = now or utcnow()
    since = now - timedelta(weeks=weeks)
    cells: dict[str | None, str] = {}
    week_counters: dict[str, Counters] = defaultdict(Counters)
    district_counters: dict[str, Counters] = defaultdict(Counters)
    total = Counters()

    for kind, when in session.execute(
        select(Indicator.kind, Indicator.reviewed_at).where(
            Indicator.state.in_(("active", "expired", "removed")), Indicator.reviewed_at >= since
        )
    ):
        if when is None:
            continue
        for c in (total, week_counters[week_of(when)]):
            if kind == "phone":
                c.numbers_shut += 1
            elif kind == "domain":
                c.sites_blocked += 1

    warned: dict[tuple[str, str], set[str]] = defaultdict(set)
    targets: dict[tuple[str, str], set[str]] = defaultdict(set)
    warning_rows: list[tuple[str, str, str]] = []
    for action, subject, outcome, cents, cell, decided in session.execute(
        select(
            Action.action,
            Action.subject,
            Action.outcome,
            Action.amount_cents,
            Action.h3_cell,
            Action.decided_at,
        ).where(Action.decided_at >= since)
    ):
        week = week_of(decided)
        district = _district_of(session, cell, cells)
        groups = (
            (total, "all"),
            (week_counters[week], f"w:{week}"),
            (district_counters[district], f"d:{district}"),
        )
        if action == "stop_pay" and outcome == "money_frozen":
            for c, _ in groups:
                c.money_frozen_cents += int(cents or 0)
        if action in WARNING_ACTIONS:
            warning_rows.append((subject, week, district))
            for c, key in groups:
                c.warnings += 1
                warned[("w", key)].add(subject)
                if outcome in TRUE_TARGET:
                    targets[("t", key)].add(subject)
                if outcome == "dissuaded":
                    targets[("d", key)].add(subject)
    for c, key in (
        (total, "all"),
        *((week_counters[w], f"w:{w}") for w in list(week_counters)),
        *((district_counters[d], f"d:{d}") for d in list(district_counters)),
    ):
        c.people_warned = len(warned.get(("w", key), ()))
        c.true_targets = len(targets.get(("t", key), ()))
        c.people_dissuaded = len(targets.get(("d", key), ()))
    true_all = targets.get(("t", "all"), set())
    for subject, week, district in warning_rows:
        if subject in true_all:
            total.warnings_to_true_targets += 1
            week_counters[week].warnings_to_true_targets += 1
            district_counters[district].warnings_to_true_targets += 1

    week_names = sorted(week_counters)
    return Dashboard(
        weeks=week_names,
        totals=total.as_dict(),
        by_week={w: week_counters[w].as_dict() for w in week_names},
        by_district={d: district_counters[d].as_dict() for d in sorted(district_counters)},
    )
