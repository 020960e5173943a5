"""The officers' side of minor accidents: reads in scope (the parties' personal data only
for the case's own station, and every such read audited), decisions on escalated cases,
and the timing medians per district for the dashboard."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from safecity.accidents import service
from safecity.accidents.models import AccidentCase, AccidentPhoto, InsurerNotice
from safecity.accidents.photos import Box, shareable_jpeg
from safecity.accidents.schemas import (
    CaseDetail,
    CaseRead,
    DistrictTiming,
    NoticeRead,
    PartyRead,
    PhotoRead,
    ReviewIn,
)
from safecity.accidents.workflow import ACCIDENT
from safecity.orgs import service as orgs
from safecity.platform import timeline, workflow
from safecity.platform.blobs import blob_store
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.pagination import ListParams, Page, paginate
from safecity.platform.runtime import settings_for
from safecity.security import audit, rbac
from safecity.security.rbac import Principal
from safecity.security.redact import redact

RECORD = ACCIDENT.record_type


def scoped_query(principal: Principal) -> Select[Any]:
    return select(AccidentCase).where(rbac.scope_clause(principal, AccidentCase.org_id))


def list_cases(*, session: Session, principal: Principal, params: ListParams) -> Page[CaseRead]:
    return paginate(
        session=session,
        query=scoped_query(principal),
        params=params,
        item=CaseRead.model_validate,
    )


def get_case(*, session: Session, principal: Principal, case_id: str) -> AccidentCase:
    return rbac.get_in_scope(session, AccidentCase, case_id, principal, what="accident case")


def sees_personal(principal: Principal, case: AccidentCase) -> bool:
    """Only the case's own station (or the city, for a case outside every station)."""
    return principal.org_id == case.org_id


def detail(*, session: Session, principal: Principal, case_id: str) -> CaseDetail:
    case = get_case(session=session, principal=principal, case_id=case_id)
    visible = sees_personal(principal, case)
    party_rows = [
        PartyRead.model_validate(p) for _, p in sorted(service.parties(session, case).items())
    ]
    if visible:
        audit.record(
            session,
            principal=principal,
            action="accidents.read_personal",
            target_type=RECORD,
            target_id=case.id,
            purpose="accident review",
        )
    else:
        party_rows = [PartyRead.model_validate(redact(p, mask=True)) for p in party_rows]
    notices = session.scalars(select(InsurerNotice).where(InsurerNotice.case_id == case.id))
    entries = timeline.list_for(session, record_type=RECORD, record_id=case.id)
    return CaseDetail.model_validate(
        {
            **CaseRead.model_validate(case).model_dump(),
            "personal_visible": visible,
            "parties": party_rows,
            "photos": [PhotoRead.model_validate(p) for p in service.photos(session, case)],
            "notices": [NoticeRead.model_validate(n) for n in notices],
            "timeline": [timeline.TimelineEntryRead.model_validate(e) for e in entries],
            "transitions": [
                t.name
                for t in workflow.available_transitions(
                    machine=ACCIDENT, record=case, principal=principal
                )
            ],
        }
    )


def parse_boxes(text: str) -> list[Box]:
    """``"l,t,r,b;l,t,r,b"`` (pixels) → boxes to blur; at most 20."""
    boxes: list[Box] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            left, top, right, bottom = (int(v) for v in part.split(","))
        except ValueError:
            raise InvalidInput("blur boxes are 'left,top,right,bottom' separated by ';'") from None
        boxes.append((left, top, right, bottom))
    if len(boxes) > 20:
        raise InvalidInput("at most 20 blur boxes")
    return boxes


def photo_bytes(
    *,
    session: Session,
    principal: Principal,
    case_id: str,
    photo_id: str,
    shareable: bool,
    boxes: list[Box],
) -> tuple[bytes, str]:
    """A photo of a case in scope: the original for the case's own station, otherwise (or
    when asked) a shareable JPEG with the boxes blurred and no EXIF/GPS. Every read is
    audited."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    photo = session.get(AccidentPhoto, photo_id)
    if photo is None or photo.case_id != case.id:
        raise NotFound("no such photo in this case")
    data = blob_store(settings_for(session)).get(photo.sha256)
    original = not shareable and sees_personal(principal, case)
    audit.record(
        session,
        principal=principal,
        action="accidents.read_photo",
        target_type=RECORD,
        target_id=case.id,
        purpose="accident review",
        detail={"photo": photo.id, "original": original, "boxes": len(boxes)},
    )
    if original:
        return data, photo.content_type
    return shareable_jpeg(data, boxes), "image/jpeg"


def decide_escalation(
    *, session: Session, principal: Principal, case_id: str, name: str, data: ReviewIn
) -> AccidentCase:
    """``rule`` (set the shares: 100, 50 or 0 for A), ``resume`` (the table's verdict
    stands; flags were looked at) or ``refer`` (handled outside this flow)."""
    case = get_case(session=session, principal=principal, case_id=case_id)
    if name == "rule":
        if data.share_a not in (0, 50, 100):
            raise InvalidInput("share_a must be 0, 50 or 100 for a ruling")
        outcome = {100: "a_liable", 50: "equal", 0: "b_liable"}[data.share_a]
        case.liability = {
            **(case.liability or {}),
            "outcome": outcome,
            "share_a": data.share_a,
            "share_b": 100 - data.share_a,
            "decided_by": "officer",
            "officer_notes": data.notes,
        }
    workflow.apply(
        session,
        machine=ACCIDENT,
        record=case,
        transition=name,
        principal=principal,
        note=data.notes,
        fields={"notes": data.notes},
    )
    case.review_outcome, case.review_notes = name, data.notes
    return case


def escalated(*, session: Session, principal: Principal, limit: int = 200) -> list[AccidentCase]:
    return list(
        session.scalars(
            scoped_query(principal)
            .where(AccidentCase.state == "escalated")
            .order_by(AccidentCase.updated_at.desc())
            .limit(limit)
        )
    )


def timings(*, session: Session, principal: Principal) -> list[DistrictTiming]:
    """Median seconds t0→t2 (start to both signed) and t2→t3 (to the insurers' ack) per
    district (the parent of the case's station; a case outside stations counts as its org)."""
    rows = session.execute(
        scoped_query(principal)
        .with_only_columns(
            AccidentCase.org_id,
            AccidentCase.t0_started_at,
            AccidentCase.t2_signed_at,
            AccidentCase.t3_insurer_ack_at,
        )
        .where(AccidentCase.t2_signed_at.is_not(None))
    ).all()
    district_of: dict[str, str] = {}
    signed: dict[str, list[float]] = defaultdict(list)
    acked: dict[str, list[float]] = defaultdict(list)
    for org_id, t0, t2, t3 in rows:
        if t2 is None:
            continue
        if org_id not in district_of:
            try:
                org = orgs.get(session=session, org_id=org_id)
                district_of[org_id] = (
                    org.parent_id if org.kind == "station" and org.parent_id else org.id
                )
            except NotFound:
                district_of[org_id] = org_id
        d = district_of[org_id]
        signed[d].append((t2 - t0).total_seconds())
        if t3 is not None:
            acked[d].append((t3 - t2).total_seconds())
    out = []
    for d in sorted(signed):
        try:
            org = orgs.get(session=session, org_id=d)
            zh, en = org.name_zh, org.name_en
        except NotFound:
            zh = en = d
        out.append(
            DistrictTiming(
                org_id=d,
                name_zh=zh,
                name_en=en,
                cases=len(signed[d]),
                median_t0_t2_s=round(statistics.median(signed[d]), 1),
                median_t2_t3_s=round(statistics.median(acked[d]), 1) if acked[d] else None,
            )
        )
    return out
