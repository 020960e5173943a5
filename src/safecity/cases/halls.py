"""The three tiers of public halls (city → district → station) and what they show.

A hall shows, for the last twelve local months and for each month: cases received, the
disclosure rate (disclosed / disclosable), satisfaction (mean rating at closing) and the
mean time of each stage. Everything comes from the materialised counters
(:mod:`safecity.cases.stats`); privacy rules are applied here, once, for every tier:

* a count below :data:`K` is shown as ``<5`` (0 included), and so is a rate or a mean
  whose base (its denominator) is below :data:`K`;
* secondary suppression: when exactly one month of the received counts is hidden, the
  smallest shown month is hidden too, so the twelve-month total cannot reveal it;
* never-disclosed types (sexual offences, minors, domestic violence, covert) and cases
  whose victim opted out are counted only in the totals (received, stage times): no
  figure is ever split by type, and the disclosure rate counts only the types the policy
  allows to disclose, so neither the hidden types nor the opt-outs can be derived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import stats
from safecity.orgs.models import Org
from safecity.platform.db import utcnow
from safecity.platform.errors import NotFound

K = 5
SUPPRESSED = "<5"
TIERS: tuple[str, ...] = ("city", "district", "station")
CHILD_KIND: dict[str, str] = {"city": "district", "district": "station"}
MONTHS = 12
DAY = 86400


def last_months(now: datetime | None = None, count: int = MONTHS) -> list[str]:
    """The ``count`` local months up to the current one, oldest first."""
    local = (now or utcnow()).astimezone(stats.ZONE)
    year, month = local.year, local.month
    out: list[str] = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return out[::-1]


def count_text(n: int) -> str:
    return SUPPRESSED if n < K else str(n)


def ratio_text(num: int, base: int, *, scale: float, digits: int, suffix: str = "") -> str:
    if base < K:
        return SUPPRESSED
    return f"{num * scale / base:.{digits}f}{suffix}"


@dataclass(frozen=True)
class Row:
    """One line of a hall's table: a month, or the twelve months together."""

    label: str
    received: str
    disclosure: str
    satisfaction: str
    stage_days: tuple[str, str, str]


def _row(label: str, c: dict[str, int], received: str | None = None) -> Row:
    def days(stage: str) -> str:
        return ratio_text(c.get(f"{stage}_sec", 0), c.get(f"{stage}_n", 0), scale=1 / DAY, digits=1)

    return Row(
        label=label,
        received=received if received is not None else count_text(c.get("received", 0)),
        disclosure=ratio_text(
            c.get("disclosed", 0), c.get("disclosable", 0), scale=100, digits=1, suffix="%"
        ),
        satisfaction=ratio_text(c.get("rating_sum", 0), c.get("rating_n", 0), scale=1, digits=1),
        stage_days=(days("s1"), days("s2"), days("s3")),
    )


def received_column(values: list[int]) -> list[str]:
    """Counts with primary (< K) and secondary suppression (never exactly one hidden)."""
    hidden = [v < K for v in values]
    if sum(hidden) == 1 and sum(values) >= K:
        shown = [i for i, h in enumerate(hidden) if not h]
        if shown:
            hidden[min(shown, key=lambda i: (values[i], i))] = True
    return [SUPPRESSED if h else str(v) for v, h in zip(values, hidden, strict=True)]


@dataclass(frozen=True)
class Hall:
    org: Org
    trail: list[Org]
    children: list[Org]
    total: Row
    months: list[Row] = field(default_factory=list)


def hall_org(session: Session, code: str | None) -> Org:
    """The org of a hall: by code (a city, district or station), else the first city."""
    query = select(Org).where(Org.kind.in_(TIERS), Org.active.is_(True))
    if code is None:
        org = session.scalars(query.where(Org.kind == "city").order_by(Org.code).limit(1)).first()
    else:
        org = session.scalars(query.where(Org.code == code)).one_or_none()
    if org is None:
        raise NotFound("no such hall")
    return org


def _trail(session: Session, org: Org) -> list[Org]:
    ids = [p for p in org.path.split("/") if p]
    by_id = {o.id: o for o in session.scalars(select(Org).where(Org.id.in_(ids)))}
    return [by_id[i] for i in ids if i in by_id and by_id[i].kind in TIERS]


def children(session: Session, org: Org) -> list[Org]:
    kind = CHILD_KIND.get(org.kind)
    if kind is None:
        return []
    return list(
        session.scalars(
            select(Org)
            .where(Org.parent_id == org.id, Org.kind == kind, Org.active.is_(True))
            .order_by(Org.code)
        )
    )


def picker(session: Session) -> list[tuple[Org, list[Org]]]:
    """Districts with their stations (active ones), for the hall picker."""
    rows = list(
        session.scalars(
            select(Org)
            .where(Org.kind.in_(("district", "station")), Org.active.is_(True))
            .order_by(Org.code)
        )
    )
    districts = [o for o in rows if o.kind == "district"]
    return [(d, [s for s in rows if s.parent_id == d.id]) for d in districts]


def build(session: Session, org: Org, *, now: datetime | None = None) -> Hall:
    """A hall's figures from the counters (twelve months, then each month, newest first)."""
    months = last_months(now)
    per_month = stats.read_months(session, org=org, months=months)
    total: dict[str, int] = {}
    for counters in per_month.values():
        for metric, value in counters.items():
            total[metric] = total.get(metric, 0) + value
    received = received_column([per_month[m].get("received", 0) for m in months])
    rows = [_row(m, per_month[m], received[i]) for i, m in enumerate(months)]
    return Hall(
        org=org,
        trail=_trail(session, org),
        children=children(session, org),
        total=_row("12", total),
        months=rows[::-1],
    )
