"""The public portal (no login): lookup by case number + code, and citizen comments.

Anti-enumeration: a malformed number, an unknown number, a wrong code, an undisclosed case
and a locked (client, case) pair all give :data:`MISS` — the caller answers them the same
way — and every check computes one HMAC, so they take the same time. Failures are counted
per (client, case): after :data:`MAX_FAILURES` that client is locked out of that case for
:data:`LOCKOUT`, while the victim (another client) still gets in. Every attempt is audited
(client address, outcome, the case id when the number exists; never the code).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, and_, func, literal, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from safecity.cases import catalogue, codes, stats
from safecity.cases.models import Case, CaseComment, CaseRating, LookupFailure
from safecity.cases.schemas import PublicCase, PublicEntry
from safecity.orgs import service as orgs
from safecity.platform import timeline
from safecity.platform.db import is_postgres, new_id, utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.timeline import TimelineEntry
from safecity.security import audit, audit_writer
from safecity.security.redact import scrub_text

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MISS = None
Outcome = Literal["ok", "miss", "locked"]
RatingOutcome = Literal["rated", "already_rated", "not_closed"]
RATINGS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class _Found:
    """What one lookup query returns: the case's public columns (``None`` for an unknown
    number), its rating, and this client's failure row for it."""

    case_id: str | None
    number: str | None
    code_mac: str | None
    org_id: str | None
    case_type: str | None
    state: str | None
    victim_opt_out: bool | None
    disclosure_override: bool | None
    created_at: datetime | None
    rating: int | None
    failure_id: str | None
    failures: int | None
    locked_until: datetime | None


_CASES = cast(Table, Case.__table__)
_FAILURES = cast(Table, LookupFailure.__table__)
_RATINGS = cast(Table, CaseRating.__table__)


def _find(session: Session, *, client: str, number: str | None, unknown_key: str) -> _Found:
    """One round trip: ``(SELECT 1) LEFT JOIN cases LEFT JOIN ratings LEFT JOIN failures``,
    so a real number and an unknown one run the same statement and get one row."""
    one = select(literal(1).label("one")).subquery()
    c, r, f = _CASES.c, _RATINGS.c, _FAILURES.c
    stmt = select(
        c.id, c.number, c.code_mac, c.org_id, c.case_type, c.state, c.victim_opt_out,
        c.disclosure_override, c.created_at, r.rating, f.id, f.failures, f.locked_until,
    ).select_from(
        one.outerjoin(_CASES, c.number == (number or ""))
        .outerjoin(_RATINGS, r.case_id == c.id)
        .outerjoin(
            _FAILURES,
            and_(f.client == client, f.case_id == func.coalesce(c.id, unknown_key)),
        )
    )  # fmt: skip
    return _Found(*cast(tuple[Any, ...], session.execute(stmt).one()))


def _locked(found: _Found) -> bool:
    return found.locked_until is not None and found.locked_until > utcnow()


def _unknown_key(number: str) -> str:
    """The failure-row key of a number no case has (32 characters, like a case id)."""
    return "u" + hashlib.sha256(number.encode()).hexdigest()[:31]


def _fail(session: Session, client: str, key: str, found: _Found) -> None:
    """Count a failure; the :data:`MAX_FAILURES`-th locks ``client`` out of ``key``."""
    now = utcnow()
    failures = (found.failures or 0) + 1
    values: dict[str, object] = {"failures": failures, "updated_at": now}
    if failures >= MAX_FAILURES:
        values.update(failures=0, locked_until=now + LOCKOUT)
    if found.failure_id is None:
        # a concurrent first failure of the same pair wins; this one is then not counted
        upsert = pg_insert if is_postgres(session) else sqlite_insert
        row = {"id": new_id(), "client": client, "case_id": key, **values}
        session.execute(upsert(_FAILURES).values(row).on_conflict_do_nothing())
    else:
        session.execute(update(_FAILURES).where(_FAILURES.c.id == found.failure_id).values(values))


def _check(session: Session, *, client: str, number: str, code: str) -> tuple[_Found, Outcome]:
    """The lookup row and the outcome; counts a miss."""
    wanted = codes.normalise(number)
    valid = codes.NUMBER_RE.match(wanted) is not None
    key = _unknown_key(wanted)
    found = _find(session, client=client, number=wanted if valid else None, unknown_key=key)
    matches = codes.code_matches(session, number=wanted, code=code, stored=found.code_mac)
    outcome: Outcome = "miss"
    # An unknown number is counted like a wrong code, under a key derived from the number:
    # both misses read and write the same rows (a write only for one of them measured
    # 1.2 ms slower in benchmarks/portal_lookup.py — a timing oracle for real numbers).
    key = found.case_id or key
    if _locked(found):
        outcome = "locked" if found.case_id is not None else "miss"
    elif found.case_id is not None and matches and _disclosed(found):
        outcome = "ok"
        if found.failures:
            session.execute(
                update(_FAILURES).where(_FAILURES.c.id == found.failure_id).values(failures=0)
            )
    elif not matches:
        _fail(session, client, key, found)
    return found, outcome


def _disclosed(found: _Found) -> bool:
    return catalogue.disclosed(
        found.case_type or "",
        victim_opt_out=bool(found.victim_opt_out),
        override=found.disclosure_override,
    )


def _attempt(found: _Found, *, client: str, outcome: Outcome, action: str) -> audit.AuditEntry:
    return audit.build(
        principal=audit.SYSTEM,
        action=action,
        target_type="case",
        target_id=found.case_id,
        purpose="public portal",
        detail={"client": client, "outcome": outcome},
    )


def verify(session: Session, *, client: str, number: str, code: str, action: str) -> Case | None:
    """The case when ``number`` + ``code`` match a disclosed case and ``client`` is not
    locked out of it; else :data:`MISS`. Audited either way, in ``session``'s transaction
    (the callers go on to change something: the record commits with the change)."""
    client = client[:64]
    found, outcome = _check(session, client=client, number=number, code=code)
    audit.enqueue(session, _attempt(found, client=client, outcome=outcome, action=action))
    if outcome != "ok" or found.case_id is None:
        return MISS
    return session.get(Case, found.case_id)


_UNIT_NAMES_TTL_S = 60.0
_unit_names: dict[str, tuple[float, str, str]] = {}


def _unit_name(session: Session, org_id: str, lang: str) -> str:
    """The handling unit's name; cached a minute (a renamed station shows within it)."""
    now = time.monotonic()
    cached = _unit_names.get(org_id)
    if cached is None or cached[0] < now:
        org = orgs.get(session=session, org_id=org_id)
        cached = _unit_names[org_id] = (now + _UNIT_NAMES_TTL_S, org.name_zh, org.name_en)
    return cached[2] if lang == "en" else cached[1]


def _public_entries(session: Session, case_id: str) -> list[PublicEntry]:
    """Public timeline entries and published comments/replies in one round trip, oldest
    first (ties: timeline before comments, each in its own order)."""
    t, cc = TimelineEntry.__table__.c, CaseComment.__table__.c
    stages = select(
        t.at, literal(0).label("src"), t.seq.label("seq"), t.kind,
        t.to_state.label("stage"), t.note.label("text"),
    ).where(
        t.record_type == "case", t.record_id == case_id, t.public.is_(True)
    )  # fmt: skip
    comments = select(
        cc.created_at, literal(1), literal(0), cc.author, literal(None), cc.public_text,
    ).where(cc.case_id == case_id, cc.public_text.is_not(None))  # fmt: skip
    rows = sorted(session.execute(union_all(stages, comments)), key=lambda r: (r[0], r[1], r[2]))
    entries: list[PublicEntry] = []
    for at, src, _, kind, stage, text in rows:
        if src == 1:
            who: Literal["comment", "reply"] = "reply" if kind == "officer" else "comment"
            entries.append(PublicEntry(at=at, kind=who, text=scrub_text(text or "")))
        elif kind in ("created", "transition") and stage:
            entries.append(PublicEntry(at=at, kind="stage", stage=stage))
        elif kind == "public_note" and text:
            entries.append(PublicEntry(at=at, kind="note", text=scrub_text(text)))
    return entries


def _view(session: Session, found: _Found, lang: str) -> PublicCase:
    """The public view of a found case (``found.case_id`` is set)."""
    ctype = catalogue.CATALOGUE[found.case_type or ""]
    return PublicCase(
        number=found.number or "",
        case_type=ctype.name_en if lang == "en" else ctype.name_zh,
        stage=found.state or "",
        unit=_unit_name(session, found.org_id or "", lang),
        opened_at=found.created_at or utcnow(),
        timeline=_public_entries(session, found.case_id or ""),
        rateable=found.rating is None and found.state in stats.RATEABLE_STATES,
        rating=found.rating,
    )


def public_case(session: Session, *, case: Case, lang: str = "zh") -> PublicCase:
    """The redacted public view: stages with dates, public notes, reviewed comments and
    replies, the handling unit's name. Never a person, a phone, an ID or an address."""
    rated = session.get(CaseRating, case.id)
    found = _Found(
        case.id, case.number, case.code_mac, case.org_id, case.case_type, case.state,
        case.victim_opt_out, case.disclosure_override, case.created_at,
        rated.rating if rated is not None else None, None, None, None,
    )  # fmt: skip
    return _view(session, found, lang)


def lookup(
    session: Session, *, client: str, number: str, code: str, lang: str = "zh"
) -> PublicCase | None:
    """The public view of the case, or :data:`MISS`. **Commits** ``session``: a lookup
    changes nothing but the lockout counters, so its audit record is group-committed by
    :mod:`~safecity.security.audit_writer` after the session's commit, and the answer
    exists only once that record is durable (:class:`AuditUnavailable` otherwise).

    Two round trips for a hit (the case with its rating and failure row; the public
    timeline), one plus a counter write for a miss, then the commit."""
    client = client[:64]
    found, outcome = _check(session, client=client, number=number, code=code)
    view = _view(session, found, lang) if outcome == "ok" else None
    entry = _attempt(found, client=client, outcome=outcome, action="cases.portal.lookup")
    audit_writer.commit_and_write(session, entry)
    return view


def comment(
    session: Session, *, client: str, number: str, code: str, text: str
) -> CaseComment | None:
    """Store a citizen comment (as written; pages escape it). Not public until reviewed."""
    case = verify(session, client=client, number=number, code=code, action="cases.portal.comment")
    if case is None:
        return None
    item = CaseComment(case_id=case.id, author="citizen", text=text.strip(), actor_id="citizen")
    session.add(item)
    session.flush()
    timeline.add(session, record_type="case", record_id=case.id, org_id=case.org_id, kind="comment")
    return item


def rate(
    session: Session, *, client: str, number: str, code: str, rating: int
) -> RatingOutcome | None:
    """The citizen's satisfaction rating (1-5) of a solved or closed case: once per case,
    audited, counted in the halls' statistics in the same transaction. ``None``: a miss."""
    if rating not in RATINGS:
        raise InvalidInput("rating must be 1, 2, 3, 4 or 5")
    case = verify(session, client=client, number=number, code=code, action="cases.portal.rating")
    if case is None:
        return MISS
    if case.state not in stats.RATEABLE_STATES:
        return "not_closed"
    if session.get(CaseRating, case.id) is not None:
        return "already_rated"
    session.add(CaseRating(case_id=case.id, rating=rating, created_at=utcnow()))
    session.flush()
    audit.record(
        session,
        principal=audit.SYSTEM,
        action="cases.rating",
        target_type="case",
        target_id=case.id,
        purpose="public portal",
        detail={"client": client[:64], "rating": rating},
    )
    stats.track(session, case, rating=rating)
    return "rated"
