"""The drivers' side of a minor accident: open, join, photos, data, accounts, verdict,
one-time-code signatures, the sealed summary and the notices to insurers.

Functions take keyword-only arguments and a session and never commit. Each driver acts
through a party token (kept only as a hash) as :func:`party_principal`; every change is
audited, on the case's timeline (via the workflow) and announced by outbox events. The
signatures and the seal are :mod:`safecity.accidents.signing`; the officer's side (reads
in scope, review, dashboard) is :mod:`safecity.accidents.review`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.accidents import events, insurers
from safecity.accidents.liability import Declaration, RuleTable, Verdict, decide
from safecity.accidents.models import (
    POSITIONS,
    AccidentCase,
    AccidentParty,
    AccidentPhoto,
)
from safecity.accidents.schemas import ELIGIBILITY, DeclarationIn, OpenIn, PartyDataIn
from safecity.accidents.workflow import ACCIDENT
from safecity.alerts import service as alerts
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform import geo, outbox, workflow
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.runtime import settings_for
from safecity.security import audit
from safecity.security.rbac import Principal

RECORD = ACCIDENT.record_type
CITY = "shanghai"
JOIN_KEY_FILE = "accidents-join.key"
REPEAT_WINDOW = timedelta(days=365)
REPEAT_THRESHOLD = 2  # this many other cases with the same plate, licence or phone: flag
CLUSTER_RADIUS_M = 150.0
CLUSTER_WINDOW = timedelta(days=90)
CLUSTER_THRESHOLD = 3  # this many other cases within the radius and window: flag the spot
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
#: The data step's fields (a verified e-certificate may fill plate and licence_no).
DATA_FIELDS: tuple[str, ...] = ("plate", "licence_no", "insurer_code", "policy_no", "phone")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _code(n: int) -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(n))


def join_code_for(session: Session, case_id: str) -> str:
    """Driver A's join code: derived from the case id with a server key, so the database
    keeps only its hash while A's page can still show the QR code."""
    key = insurers.secret_file(settings_for(session).effective_key_dir, JOIN_KEY_FILE)
    digest = hmac.new(key, case_id.encode(), hashlib.sha256).digest()
    return "".join(_CODE_ALPHABET[b % len(_CODE_ALPHABET)] for b in digest[:8])


def rule_table() -> RuleTable:
    return RuleTable.shipped(CITY)


def party_principal(case: AccidentCase, party: AccidentParty) -> Principal:
    """The driver as an actor: a citizen scoped to the case's org, for audit and workflow."""
    return Principal(
        id=f"accident-party:{party.id}",
        kind="user",
        username=f"driver-{party.role}",
        roles=frozenset({"citizen"}),
        org_id=case.org_id,
        visible_org_ids=frozenset({case.org_id}),
        auth_method="party_token",
    )


@dataclass(frozen=True)
class Opened:
    case: AccidentCase
    party: AccidentParty
    token: str  # the driver's party token (shown once, kept as a hash)
    join_code: str = ""  # for driver B (shown to A once)


def _org_for(session: Session, lat: float, lng: float) -> str:
    station = orgs.org_for_point(session=session, lat=lat, lng=lng)
    if station is not None:
        return station.id
    city = session.scalars(select(Org).where(Org.kind == "city").order_by(Org.path)).first()
    if city is None:
        raise InvalidInput("no station or city covers this place")
    return city.id


def audit_action(
    session: Session, who: Principal, action: str, case: AccidentCase, **detail: Any
) -> None:
    audit.record(
        session,
        principal=who,
        action=f"accidents.{action}",
        target_type=RECORD,
        target_id=case.id,
        detail=detail or None,
    )


def open_case(*, session: Session, data: OpenIn) -> Opened:
    """Driver A opens a case; any "no" in the checklist escalates it at once (call 122)."""
    unknown = sorted(set(data.eligibility) - set(ELIGIBILITY))
    if unknown:
        raise InvalidInput(f"unknown checklist items: {', '.join(unknown)}")
    now = utcnow()
    token = secrets.token_urlsafe(24)
    case = AccidentCase(
        id=new_id(),
        ref="SH" + _code(8),
        org_id=_org_for(session, data.lat, data.lng),
        city=CITY,
        lat=data.lat,
        lng=data.lng,
        eligibility={k: bool(data.eligibility.get(k, False)) for k in ELIGIBILITY},
        t0_started_at=now,
        created_at=now,
        updated_at=now,
    )
    join_code = join_code_for(session, case.id)
    case.join_code_hash = sha256_hex(join_code)
    case.state = ACCIDENT.initial
    session.add(case)
    session.flush()
    workflow.start(session, machine=ACCIDENT, record=case, principal=audit.SYSTEM)
    party = AccidentParty(case_id=case.id, role="A", token_hash=sha256_hex(token), joined_at=now)
    session.add(party)
    session.flush()
    who = party_principal(case, party)
    audit_action(session, who, "open", case)
    outbox.emit(
        session,
        type=events.OPENED,
        source=events.SOURCE,
        org_id=case.org_id,
        payload={"case_id": case.id, "org_id": case.org_id},
    )
    flag(session, case, who, cluster(session=session, case=case))
    failed = [k for k, ok in case.eligibility.items() if not ok]
    if failed:
        escalate(session=session, case=case, who=who, reason="not_eligible", detail=failed)
    return Opened(case=case, party=party, token=token, join_code=join_code)


def cluster(*, session: Session, case: AccidentCase) -> list[dict[str, Any]]:
    """A review flag when :data:`CLUSTER_THRESHOLD` or more other cases were opened within
    :data:`CLUSTER_RADIUS_M` of this one in :data:`CLUSTER_WINDOW` (staged collisions come
    back to the same quiet corner; so does a dangerous junction — a reviewer tells which)."""
    box = CLUSTER_RADIUS_M / 111_000  # degrees of latitude; longitude box widened below
    lng_box = box / max(0.2, math.cos(math.radians(case.lat)))
    nearby = session.execute(
        select(AccidentCase.id, AccidentCase.lat, AccidentCase.lng).where(
            AccidentCase.id != case.id,
            AccidentCase.t0_started_at >= case.t0_started_at - CLUSTER_WINDOW,
            AccidentCase.lat.between(case.lat - box, case.lat + box),
            AccidentCase.lng.between(case.lng - lng_box, case.lng + lng_box),
        )
    ).all()
    close = sorted(
        cid
        for cid, lat, lng in nearby
        if geo.distance_m((lng, lat), (case.lng, case.lat)) <= CLUSTER_RADIUS_M
    )
    if len(close) < CLUSTER_THRESHOLD:
        return []
    return [
        {
            "code": "cluster_at_spot",
            "photo": "",
            "detail": f"{len(close)} other case(s) within {CLUSTER_RADIUS_M:.0f} m in "
            f"{CLUSTER_WINDOW.days} days: {', '.join(close[:5])}",
        }
    ]


def join_case(*, session: Session, join_code: str) -> Opened:
    """Driver B joins by A's code; a closed case or a third driver is refused (409)."""
    code = join_code.strip().upper()
    case = session.scalars(
        select(AccidentCase).where(AccidentCase.join_code_hash == sha256_hex(code))
    ).first()
    if case is None:
        raise NotFound("no accident case has this join code")
    if case.state in ("closed", "notified"):
        raise Conflict("this case is closed; its join code can no longer be used")
    taken = session.scalars(
        select(AccidentParty).where(AccidentParty.case_id == case.id, AccidentParty.role == "B")
    ).first()
    if taken is not None or case.state != "opened":
        raise Conflict("this case already has its two drivers; a third cannot join")
    token = secrets.token_urlsafe(24)
    party = AccidentParty(
        case_id=case.id, role="B", token_hash=sha256_hex(token), joined_at=utcnow()
    )
    session.add(party)
    session.flush()
    who = party_principal(case, party)
    workflow.apply(session, machine=ACCIDENT, record=case, transition="join", principal=who)
    return Opened(case=case, party=party, token=token)


def authenticate(
    *, session: Session, ref: str, role: str, token: str | None
) -> tuple[AccidentCase, AccidentParty]:
    """The case and driver a party token belongs to; every miss is the same 404."""
    miss = NotFound("no accident case for this link")
    if not token or role not in ("A", "B"):
        raise miss
    party = session.scalars(
        select(AccidentParty).where(AccidentParty.token_hash == sha256_hex(token))
    ).first()
    if party is None or party.role != role:
        raise miss
    case = session.get(AccidentCase, party.case_id)
    if case is None or case.ref != ref:
        raise miss
    return case, party


def parties(session: Session, case: AccidentCase) -> dict[str, AccidentParty]:
    rows = session.scalars(select(AccidentParty).where(AccidentParty.case_id == case.id))
    return {p.role: p for p in rows}


def photos(session: Session, case: AccidentCase) -> list[AccidentPhoto]:
    return list(
        session.scalars(
            select(AccidentPhoto)
            .where(AccidentPhoto.case_id == case.id)
            .order_by(AccidentPhoto.uploaded_at)
        )
    )


def ensure_editable(case: AccidentCase) -> None:
    if case.state not in ("opened", "joined"):
        raise Conflict(f"the case is {case.state}; its evidence can no longer change")


# --------------------------------------------------------------------------- evidence


def flag(session: Session, case: AccidentCase, who: Principal, new: list[dict[str, Any]]) -> None:
    """Record review flags and raise (or fold into) the case's review alert: never blocks."""
    if not new:
        return
    case.flags = [*case.flags, *new]
    codes = sorted({f["code"] for f in case.flags})
    alert = alerts.raise_alert(
        session,
        source="accidents",
        category="accident_review",
        severity="medium",
        title_key="accidents.alert.review",
        lat=case.lat,
        lng=case.lng,
        dedup_key=f"accident:{case.id}",
        occurred_at=utcnow(),
        detail={"case_id": case.id, "codes": codes},
        org_id=case.org_id,
    )
    case.review_alert_id = alert.id
    outbox.emit(
        session,
        type=events.FLAGGED,
        source=events.SOURCE,
        org_id=case.org_id,
        payload={"case_id": case.id, "org_id": case.org_id, "codes": codes, "alert_id": alert.id},
    )
    audit_action(session, who, "flag", case, codes=codes)


def confirm_road_cleared(*, session: Session, case: AccidentCase, party: AccidentParty) -> None:
    """The driver confirms the vehicles are off the carriageway (t1 on the first one)."""
    if party.road_cleared_at is None:
        party.road_cleared_at = utcnow()
        case.t1_road_cleared_at = case.t1_road_cleared_at or party.road_cleared_at
        who = party_principal(case, party)
        audit_action(session, who, "road_cleared", case)
        advance(session=session, case=case, who=who)


def set_party_data(
    *, session: Session, case: AccidentCase, party: AccidentParty, data: PartyDataIn
) -> None:
    ensure_editable(case)
    insurers.get_insurer(data.insurer_code)
    before = {name: str(getattr(party, name)) for name in DATA_FIELDS}
    party.plate = data.plate.strip().upper()
    party.licence_no = data.licence_no.strip().upper()
    party.insurer_code = data.insurer_code
    party.policy_no = data.policy_no.strip().upper()
    party.phone = data.phone.strip()
    party.field_sources = typed_sources(party, before)
    if party.licence_no != before["licence_no"]:
        party.holder_name = ""  # the name belonged to the verified licence number
    who = party_principal(case, party)
    audit_action(session, who, "party_data", case, role=party.role, insurer=data.insurer_code)
    flag(session, case, who, repeats(session=session, case=case, party=party))
    advance(session=session, case=case, who=who)


def data_complete(party: AccidentParty) -> bool:
    """Every data field is in (a credential may have filled some before the form)."""
    return all(getattr(party, name) for name in DATA_FIELDS)


def typed_sources(party: AccidentParty, before: dict[str, str]) -> dict[str, Any]:
    """``field_sources`` after the driver saved the data form: a field filled from a
    credential and left unchanged keeps its credential entry; every other one is typed."""
    old = dict(party.field_sources or {})
    out: dict[str, Any] = {}
    for name in DATA_FIELDS:
        entry = old.get(name) or {}
        kept = entry.get("source") == "credential" and getattr(party, name) == before[name]
        out[name] = entry if kept else {"source": "typed"}
    if party.licence_no == before["licence_no"] and "holder_name" in old:
        out["holder_name"] = old["holder_name"]
    return out


def repeats(*, session: Session, case: AccidentCase, party: AccidentParty) -> list[dict[str, Any]]:
    """Review flags: the same plate, licence or phone in other accident cases within
    :data:`REPEAT_WINDOW` (codes and case ids only; the values stay in their rows).
    Flags for a reviewer; the linkage service can replace this exact-match check."""
    since = case.t0_started_at - REPEAT_WINDOW
    out = []
    for field_name, column in (
        ("plate", AccidentParty.plate),
        ("licence", AccidentParty.licence_no),
        ("phone", AccidentParty.phone),
    ):
        value = getattr(party, "licence_no" if field_name == "licence" else field_name)
        if not value:
            continue
        others = session.scalars(
            select(AccidentParty.case_id)
            .join(AccidentCase, AccidentCase.id == AccidentParty.case_id)
            .where(
                column == value,
                AccidentParty.case_id != case.id,
                AccidentCase.t0_started_at >= since,
            )
            .distinct()
            .limit(REPEAT_THRESHOLD + 5)
        ).all()
        if len(others) >= REPEAT_THRESHOLD:
            out.append(
                {
                    "code": f"repeat_{field_name}",
                    "photo": "",
                    "detail": f"{len(others)} other case(s): {', '.join(sorted(others)[:5])}",
                }
            )
    return out


def declare(
    *, session: Session, case: AccidentCase, party: AccidentParty, data: DeclarationIn
) -> None:
    """The driver's own situations and those they confirm of the other driver."""
    ensure_editable(case)
    known = rule_table().situations
    unknown = sorted((set(data.own) | set(data.other)) - set(known))
    if unknown:
        raise InvalidInput(f"unknown situations: {', '.join(unknown)}")
    party.own_situations, party.other_situations = sorted(set(data.own)), sorted(set(data.other))
    party.declared_at = utcnow()
    who = party_principal(case, party)
    audit_action(session, who, "declare", case, role=party.role)
    advance(session=session, case=case, who=who)


def missing(session: Session, case: AccidentCase) -> list[str]:
    """What the case still needs before the table decides (codes, for the pages)."""
    found = parties(session, case)
    out = [f"photo_{p}" for p in POSITIONS if p not in {x.position for x in photos(session, case)}]
    if case.t1_road_cleared_at is None:
        out.append("road_cleared")
    for role in ("A", "B"):
        p = found.get(role)
        if p is None:
            out.append(f"join_{role}")
            continue
        if not data_complete(p):
            out.append(f"data_{role}")
        if p.declared_at is None:
            out.append(f"declare_{role}")
    return out


def verdict_json(verdict: Verdict, *, decided_by: str = "table") -> dict[str, Any]:
    esc = verdict.escalation
    return {
        "outcome": str(verdict.outcome),
        "share_a": verdict.share_a,
        "share_b": verdict.share_b,
        "city": verdict.city,
        "table_version": verdict.table_version,
        "decided_by": decided_by,
        "fired": [
            {
                "rule_id": f.rule_id,
                "party": str(f.party),
                "title_zh": f.title_zh,
                "title_en": f.title_en,
                "basis": f.basis,
                "eas": list(f.eas),
                "outweighed": f.outweighed,
            }
            for f in verdict.fired
        ],
        "escalation": None
        if esc is None
        else {
            "reason": str(esc.reason),
            "detail": esc.detail,
            "zh": esc.message_zh,
            "en": esc.message_en,
        },
    }


def advance(*, session: Session, case: AccidentCase, who: Principal) -> None:
    """Once everything is in, let the table decide: a verdict, or an escalation."""
    if case.state != "joined" or missing(session, case):
        return
    found = parties(session, case)
    a, b = (
        Declaration.of(own=found[r].own_situations, other=found[r].other_situations)
        for r in ("A", "B")
    )
    verdict = decide(rule_table(), a, b)
    case.liability = verdict_json(verdict)
    if verdict.decided:
        workflow.apply(
            session, machine=ACCIDENT, record=case, transition="complete_evidence", principal=who
        )
        return
    esc = verdict.escalation
    escalate(
        session=session,
        case=case,
        who=who,
        reason=str(esc.reason) if esc else "no_rule",
        detail=[esc.detail] if esc else [],
    )


def escalate(
    *, session: Session, case: AccidentCase, who: Principal, reason: str, detail: list[str]
) -> None:
    """To the officer queue: the state changes, a review alert is raised."""
    case.escalation_reason = reason
    case.escalation_detail = "; ".join(detail)[:2000]
    workflow.apply(
        session, machine=ACCIDENT, record=case, transition="escalate", principal=who, reason=reason
    )
    flag(session, case, who, [{"code": f"escalated_{reason}", "photo": "", "detail": ""}])
