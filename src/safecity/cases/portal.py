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
from datetime import timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import catalogue, codes, stats
from safecity.cases.models import Case, CaseComment, CaseRating, LookupFailure
from safecity.cases.schemas import PublicCase, PublicEntry
from safecity.orgs import service as orgs
from safecity.platform import timeline
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput
from safecity.security import audit
from safecity.security.redact import scrub_text

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=15)
MISS = None
Outcome = Literal["ok", "miss", "locked"]
RatingOutcome = Literal["rated", "already_rated", "not_closed"]
RATINGS: tuple[int, ...] = (1, 2, 3, 4, 5)


def _locked(row: LookupFailure | None) -> bool:
    return row is not None and row.locked_until is not None and row.locked_until > utcnow()


def _failure_row(session: Session, client: str, case_id: str) -> LookupFailure | None:
    return session.scalar(
        select(LookupFailure).where(
            LookupFailure.client == client, LookupFailure.case_id == case_id
        )
    )


def _unknown_key(number: str) -> str:
    """The failure-row key of a number no case has (32 characters, like a case id)."""
    return "u" + hashlib.sha256(number.encode()).hexdigest()[:31]


def _fail(session: Session, client: str, case_id: str, row: LookupFailure | None) -> None:
    now = utcnow()
    if row is None:
        row = LookupFailure(client=client, case_id=case_id, failures=0)
        session.add(row)
    row.failures += 1
    row.updated_at = now
    if row.failures >= MAX_FAILURES:
        row.locked_until = now + LOCKOUT
        row.failures = 0


def verify(session: Session, *, client: str, number: str, code: str, action: str) -> Case | None:
    """The case when ``number`` + ``code`` match a disclosed case and ``client`` is not
    locked out of it; else :data:`MISS`. Audited either way."""
    client = client[:64]
    wanted = codes.normalise(number)
    case = (
        session.scalar(select(Case).where(Case.number == wanted))
        if codes.NUMBER_RE.match(wanted)
        else None
    )
    matches = codes.code_matches(
        session,
        number=wanted,
        code=code,
        stored=case.code_mac if case is not None else None,
    )
    outcome: Outcome = "miss"
    # An unknown number is counted like a wrong code, under a key derived from the number:
    # both misses read and write the same rows (a write only for one of them measured
    # 1.2 ms slower in benchmarks/portal_lookup.py — a timing oracle for real numbers).
    key = case.id if case is not None else _unknown_key(wanted)
    row = _failure_row(session, client, key)
    if _locked(row):
        outcome = "locked" if case is not None else "miss"
    elif case is not None and matches and catalogue.case_disclosed(case):
        outcome = "ok"
        if row is not None:
            row.failures = 0
    elif not matches:
        _fail(session, client, key, row)
    audit.record(
        session,
        principal=audit.SYSTEM,
        action=action,
        target_type="case",
        target_id=case.id if case is not None else None,
        purpose="public portal",
        detail={"client": client, "outcome": outcome},
    )
    return case if outcome == "ok" else MISS


def _unit_name(session: Session, org_id: str, lang: str) -> str:
    org = orgs.get(session=session, org_id=org_id)
    return org.name_en if lang == "en" else org.name_zh


def public_case(session: Session, *, case: Case, lang: str = "zh") -> PublicCase:
    """The redacted public view: stages with dates, public notes, reviewed comments and
    replies, the handling unit's name. Never a person, a phone, an ID or an address."""
    entries: list[PublicEntry] = []
    for e in timeline.list_for(session, record_type="case", record_id=case.id, public_only=True):
        if e.kind in ("created", "transition") and e.to_state:
            entries.append(PublicEntry(at=e.at, kind="stage", stage=e.to_state))
        elif e.kind == "public_note" and e.note:
            entries.append(PublicEntry(at=e.at, kind="note", text=scrub_text(e.note)))
    for c in session.scalars(
        select(CaseComment)
        .where(CaseComment.case_id == case.id, CaseComment.public_text.is_not(None))
        .order_by(CaseComment.created_at)
    ):
        kind: Literal["comment", "reply"] = "reply" if c.author == "officer" else "comment"
        entries.append(
            PublicEntry(at=c.created_at, kind=kind, text=scrub_text(c.public_text or ""))
        )
    entries.sort(key=lambda x: x.at)
    ctype = catalogue.CATALOGUE[case.case_type]
    rated = session.get(CaseRating, case.id)
    return PublicCase(
        number=case.number,
        case_type=ctype.name_en if lang == "en" else ctype.name_zh,
        stage=case.state,
        unit=_unit_name(session, case.org_id, lang),
        opened_at=case.created_at,
        timeline=entries,
        rateable=rated is None and case.state in stats.RATEABLE_STATES,
        rating=rated.rating if rated is not None else None,
    )


def lookup(
    session: Session, *, client: str, number: str, code: str, lang: str = "zh"
) -> PublicCase | None:
    case = verify(session, client=client, number=number, code=code, action="cases.portal.lookup")
    return None if case is None else public_case(session, case=case, lang=lang)


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
