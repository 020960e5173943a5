"""Audit routes, for auditors only: read the log (``audit:read``), verify it (``audit:verify``).

Reading the audit log is itself audited (``audit.read``, with the filters used), and so is
a verification (``audit.verify``, with its outcome).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from safecity.platform.errors import InvalidInput
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.platform.runtime import DbSession
from safecity.security import audit
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/audit", tags=["audit"])

Reader = Annotated[Principal, Depends(require("audit:read"))]
Verifier = Annotated[Principal, Depends(require("audit:verify"))]

AUDIT_LIST = ListSpec(
    sort={"seq": AuditEntry.seq, "at": AuditEntry.at},
    filters={
        "actor_id": AuditEntry.actor_id,
        "action": AuditEntry.action,
        "target_type": AuditEntry.target_type,
        "target_id": AuditEntry.target_id,
        "org_id": AuditEntry.org_id,
        "role": AuditEntry.role,
    },
    default_sort="-seq",
    tiebreak=AuditEntry.seq,
)


class AuditRecord(BaseModel):
    """One audit record, as stored (ids only; ``mac`` chains it to ``prev_mac``)."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    id: str
    at: datetime
    actor_id: str
    actor_kind: str
    role: str
    org_id: str | None
    purpose: str | None
    action: str
    target_type: str
    target_id: str | None
    request_id: str | None
    detail: dict[str, Any]
    prev_mac: str
    mac: str


class Finding(BaseModel):
    seq: int
    code: str
    reason: str


class VerifyResult(BaseModel):
    ok: bool
    summary: str
    records: int
    checkpoints: int
    last_seq: int
    chain_id: str | None
    checkpoint_key: str | None
    first_bad: Finding | None


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(f"{name}: a timezone is required (e.g. 2025-01-31T08:00Z)")
    return value


@router.get("", response_model=Page[AuditRecord], summary="Search the audit log (auditors)")
def list_audit(
    request: Request,
    session: DbSession,
    principal: Reader,
    params: Annotated[ListParams, Depends(AUDIT_LIST.params)],
    since: Annotated[datetime | None, Query(description="From this time (inclusive).")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (exclusive).")] = None,
    action_prefix: Annotated[
        str | None, Query(max_length=100, description="Actions starting with this, e.g. 'cases.'")
    ] = None,
    purpose: Annotated[
        str | None, Query(max_length=200, description="Why you read the log (recorded).")
    ] = None,
    before_seq: Annotated[
        int | None,
        Query(
            ge=1,
            description="Only records before this seq (set by the next link, so "
            "pages stay stable while records are added).",
        ),
    ] = None,
) -> Page[AuditRecord]:
    since, until = _aware("since", since), _aware("until", until)
    if before_seq is None:
        before_seq = (session.scalar(select(func.max(AuditEntry.seq))) or 0) + 1
        params = replace(params, query=(*params.query, ("before_seq", str(before_seq))))
    query = select(AuditEntry).where(AuditEntry.seq < before_seq)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if action_prefix:
        escaped = action_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(AuditEntry.action.like(escaped + "%", escape="\\"))
    page: Page[AuditRecord] = paginate(
        session=session, query=query, params=params, item=AuditRecord
    )
    filters: dict[str, Any] = {k: str(v) for k, v in params.filters.items()}
    for name, value in (("since", since), ("until", until), ("action_prefix", action_prefix)):
        if value is not None:
            filters[name] = value.isoformat() if isinstance(value, datetime) else value
    audit.record(
        session,
        principal=principal,
        action="audit.read",
        target_type="audit_log",
        purpose=purpose,
        request_id=getattr(request.state, "request_id", None),
        detail={
            "filters": filters,
            "offset": params.offset,
            "returned": len(page.items),
            "seqs": [page.items[0].seq, page.items[-1].seq] if page.items else [],
        },
    )
    return page


@router.post("/verify", response_model=VerifyResult, summary="Verify the audit chain (auditors)")
def verify_audit(request: Request, session: DbSession, principal: Verifier) -> VerifyResult:
    report = audit.verify(session)
    bad = report.first_bad
    audit.record(
        session,
        principal=principal,
        action="audit.verify",
        target_type="audit_log",
        request_id=getattr(request.state, "request_id", None),
        detail={
            "ok": report.ok,
            "records": report.records,
            "first_bad_seq": bad.seq if bad else None,
            "code": bad.code if bad else None,
        },
    )
    return VerifyResult(
        ok=report.ok,
        summary=report.summary(),
        records=report.records,
        checkpoints=report.checkpoints,
        last_seq=report.last_seq,
        chain_id=report.chain_id,
        checkpoint_key=report.checkpoint_key,
        first_bad=Finding(seq=bad.seq, code=bad.code, reason=bad.reason) if bad else None,
    )
