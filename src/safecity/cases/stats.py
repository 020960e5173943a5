"""Materialised public statistics of the cases (the halls of the 阳光警务 portal).

Every case contributes a small vector of counters to the rows of its org, and of each org
above it (station → district → city), for the local month (Asia/Shanghai) it was received
in (:func:`contribution`)::

    received                      1
    disclosable / disclosed       1 when the type's policy allows disclosure / the portal
                                  actually shows it (no opt-out, no hiding override)
    rating_n / rating_sum         1 / the citizen's 1-5 rating at closing
    s1_n / s1_sec                 received → registered (seconds)
    s2_n / s2_sec                 registered → investigating (first time)
    s3_n / s3_sec                 investigating → solved or closed

The contribution is kept per case in ``case_stat_facts``; :func:`track`, called by the
cases service in the same transaction as every change that moves it (open, transition,
transfer, disclosure, rating), subtracts the case's old contribution and adds the new one
with atomic upserts (``value = value + delta``), so concurrent writers never lose a count.
:func:`rebuild` recomputes every fact and counter from the cases, their timelines and
ratings, and gives the same rows (rows whose value went back to 0 aside).

Pages read only the counters (:func:`read_months`): one org's rows for twelve months
(at most 12 x 11), whatever the tier; no case is read per request. The fact keeps the org
path it was counted under, so a later change subtracts from the same orgs it added to;
after an org moves to another parent, ``safecity cases stats rebuild`` re-files the
counters under the new tree (``check`` shows the difference until then).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from safecity.cases import catalogue
from safecity.cases.models import Case, CaseRating, CaseStat, CaseStatFact
from safecity.orgs.models import Org
from safecity.platform.timeline import TimelineEntry

ZONE = ZoneInfo("Asia/Shanghai")
METRICS: tuple[str, ...] = (
    "received",
    "disclosable",
    "disclosed",
    "rating_n",
    "rating_sum",
    "s1_n",
    "s1_sec",
    "s2_n",
    "s2_sec",
    "s3_n",
    "s3_sec",
)
STAGES: dict[str, str] = {
    "registered": "registered_at",
    "investigating": "investigating_at",
    "solved": "ended_at",
    "closed": "ended_at",
}
"""Target state of a transition → the fact's time it sets (the first time only)."""
RATEABLE_STATES: tuple[str, ...] = ("solved", "closed")
CHUNK = 5000


class FactLike(Protocol):
    org_id: str
    org_path: str
    month: str
    disclosable: bool
    disclosed: bool
    received_at: datetime
    registered_at: datetime | None
    investigating_at: datetime | None
    ended_at: datetime | None
    rating: int | None


@dataclass
class Fact:
    """A case's contribution inputs, as :func:`rebuild` computes them."""

    case_id: str
    org_id: str
    org_path: str
    month: str
    disclosable: bool
    disclosed: bool
    received_at: datetime
    registered_at: datetime | None = None
    investigating_at: datetime | None = None
    ended_at: datetime | None = None
    rating: int | None = None


def month_of(at: datetime) -> str:
    """The local month (``YYYY-MM``, Asia/Shanghai) of a UTC time."""
    return at.astimezone(ZONE).strftime("%Y-%m")


def chain(path: str) -> list[str]:
    """Org ids of an org path (``/city/district/station/``), the org itself included."""
    return [p for p in path.split("/") if p]


def _org_path(session: Session, org_id: str) -> str:
    org = session.get(Org, org_id)
    return org.path if org is not None else f"/{org_id}/"


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds()))


def contribution(fact: FactLike) -> dict[str, int]:
    """The counters one case adds to its (org, month)."""
    out = {
        "received": 1,
        "disclosable": int(fact.disclosable),
        "disclosed": int(fact.disclosable and fact.disclosed),
    }
    if fact.rating is not None:
        out["rating_n"] = 1
        out["rating_sum"] = fact.rating
    if fact.registered_at is not None:
        out["s1_n"] = 1
        out["s1_sec"] = _seconds(fact.received_at, fact.registered_at)
        if fact.investigating_at is not None:
            out["s2_n"] = 1
            out["s2_sec"] = _seconds(fact.registered_at, fact.investigating_at)
    if fact.investigating_at is not None and fact.ended_at is not None:
        out["s3_n"] = 1
        out["s3_sec"] = _seconds(fact.investigating_at, fact.ended_at)
    return out


def _flags(case: Any) -> tuple[bool, bool]:
    kind = catalogue.CATALOGUE.get(case.case_type)
    disclosable = bool(kind is not None and kind.disclosed)
    return disclosable, disclosable and catalogue.case_disclosed(case)


def _set_stage(fact: FactLike, state: str | None, at: datetime) -> None:
    attribute = STAGES.get(state or "")
    if attribute is not None and getattr(fact, attribute) is None:
        setattr(fact, attribute, at)


# --------------------------------------------------------------------------- writes

Key = tuple[str, str, str]


def _upsert(session: Session, deltas: Mapping[Key, int]) -> None:
    """``value += delta`` for each (org, month, metric), inserting missing rows."""
    rows = [
        {"org_id": o, "month": m, "metric": k, "value": v} for (o, m, k), v in deltas.items() if v
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(CaseStat).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CaseStat.org_id, CaseStat.month, CaseStat.metric],
        set_={"value": CaseStat.value + stmt.excluded.value},
    )
    session.execute(stmt)


def track(
    session: Session,
    case: Case,
    *,
    stage: str | None = None,
    at: datetime | None = None,
    rating: int | None = None,
) -> None:
    """Bring the counters up to date with ``case`` after a change, in the caller's
    transaction: its org, disclosure, a stage reached at ``at``, a rating."""
    # The row lock keeps two concurrent changes of one case from both subtracting the
    # same old contribution (and waits for a running rebuild, which locks the table).
    fact = session.get(CaseStatFact, case.id, with_for_update=True)
    old: dict[Key, int] = {}
    if fact is None:
        fact = CaseStatFact(
            case_id=case.id,
            org_id=case.org_id,
            org_path=_org_path(session, case.org_id),
            month=month_of(case.created_at),
        )
        fact.received_at = case.created_at
        fact.registered_at = fact.investigating_at = fact.ended_at = None
        fact.rating = None
        session.add(fact)
    else:
        old = {
            (org, fact.month, k): v
            for k, v in contribution(fact).items()
            for org in chain(fact.org_path)
        }
    if fact.org_id != case.org_id:
        fact.org_path = _org_path(session, case.org_id)
    fact.org_id = case.org_id
    fact.disclosable, fact.disclosed = _flags(case)
    if stage is not None and at is not None:
        _set_stage(fact, stage, at)
    if rating is not None:
        fact.rating = rating
    deltas: dict[Key, int] = defaultdict(int)
    for key, value in old.items():
        deltas[key] -= value
    for metric, value in contribution(fact).items():
        for org in chain(fact.org_path):
            deltas[(org, fact.month, metric)] += value
    _upsert(session, deltas)


@dataclass(frozen=True)
class RebuildReport:
    cases: int
    rows: int


def _facts(session: Session) -> dict[str, Fact]:
    facts: dict[str, Fact] = {}
    paths: dict[str, str] = dict(session.execute(select(Org.id, Org.path)).all())
    cases = select(
        Case.id,
        Case.org_id,
        Case.case_type,
        Case.victim_opt_out,
        Case.disclosure_override,
        Case.created_at,
    )
    for row in session.execute(cases.execution_options(yield_per=CHUNK)):
        disclosable, disclosed = _flags(row)
        facts[row.id] = Fact(
            case_id=row.id,
            org_id=row.org_id,
            org_path=paths.get(row.org_id, f"/{row.org_id}/"),
            month=month_of(row.created_at),
            disclosable=disclosable,
            disclosed=disclosed,
            received_at=row.created_at,
        )
    stages = (
        select(TimelineEntry.record_id, TimelineEntry.to_state, TimelineEntry.at)
        .where(
            TimelineEntry.record_type == "case",
            TimelineEntry.kind == "transition",
            TimelineEntry.to_state.in_(tuple(STAGES)),
        )
        .order_by(TimelineEntry.seq)
    )
    for record_id, to_state, at in session.execute(stages.execution_options(yield_per=CHUNK)):
        fact = facts.get(record_id)
        if fact is not None:
            _set_stage(fact, to_state, at)
    for case_id, rating in session.execute(select(CaseRating.case_id, CaseRating.rating)):
        if case_id in facts:
            facts[case_id].rating = rating
    return facts


def _chunks(rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), CHUNK):
        yield rows[start : start + CHUNK]


def _totals(facts: Iterable[Fact]) -> dict[Key, int]:
    totals: dict[Key, int] = defaultdict(int)
    for fact in facts:
        orgs = chain(fact.org_path)
        for metric, value in contribution(fact).items():
            for org in orgs:
                totals[(org, fact.month, metric)] += value
    return totals


def computed(session: Session) -> dict[Key, int]:
    """Every non-zero counter as :func:`rebuild` would store it (writes nothing)."""
    return {k: v for k, v in _totals(_facts(session).values()).items() if v}


def rebuild(session: Session) -> RebuildReport:
    """Recompute every fact and counter from the cases, their timelines and ratings (in
    the caller's transaction: readers see the old rows until it commits). On PostgreSQL
    the facts table is locked first, so a concurrent change waits and then applies its
    delta to the rebuilt rows."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE case_stat_facts IN EXCLUSIVE MODE"))
    facts = _facts(session)
    totals = _totals(facts.values())
    session.execute(delete(CaseStat))
    session.execute(delete(CaseStatFact))
    fact_rows = [vars(f).copy() for f in facts.values()]
    for chunk in _chunks(fact_rows):
        session.execute(insert(cast(Table, CaseStatFact.__table__)), chunk)
    counter_rows = [
        {"org_id": o, "month": m, "metric": k, "value": v} for (o, m, k), v in totals.items() if v
    ]
    for chunk in _chunks(counter_rows):
        session.execute(insert(cast(Table, CaseStat.__table__)), chunk)
    return RebuildReport(cases=len(facts), rows=len(counter_rows))


# --------------------------------------------------------------------------- reads


def counters(session: Session) -> dict[Key, int]:
    """Every non-zero counter (for checks: rebuild == incremental)."""
    rows = session.execute(select(CaseStat.org_id, CaseStat.month, CaseStat.metric, CaseStat.value))
    return {(o, m, k): v for o, m, k, v in rows if v}


def read_months(session: Session, *, org: Org, months: Iterable[str]) -> dict[str, dict[str, int]]:
    """The counters of ``org`` (its cases and those below it), per month: one primary-key
    range read."""
    wanted = tuple(months)
    query = select(CaseStat.month, CaseStat.metric, CaseStat.value).where(
        CaseStat.org_id == org.id, CaseStat.month.in_(wanted)
    )
    result: dict[str, dict[str, int]] = {m: {} for m in wanted}
    for month, metric, value in session.execute(query):
        result[month][metric] = int(value)
    return result
