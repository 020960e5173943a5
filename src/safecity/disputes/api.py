"""HTTP API of the disputes domain: list, record, read, change, transitions, follow-ups,
and the dashboard numbers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query

from safecity.disputes import service
from safecity.disputes.models import Dispute
from safecity.disputes.schemas import (
    DashboardRead,
    DisputeCreate,
    DisputeDetail,
    DisputeRead,
    DisputeUpdate,
    FollowUpCreate,
    FollowUpRead,
    TransitionIn,
)
from safecity.disputes.workflow import DISPUTE, READ, WRITE
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.pagination import ListParams, ListSpec, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/disputes", tags=["disputes"])

DISPUTE_LIST = ListSpec(
    sort={
        "reported_at": Dispute.reported_at,
        "updated_at": Dispute.updated_at,
        "next_follow_up_at": Dispute.next_follow_up_at,
        "category": Dispute.category,
    },
    filters={
        "state": Dispute.state,
        "category": Dispute.category,
        "org_id": Dispute.org_id,
        "assigned_officer_id": Dispute.assigned_officer_id,
    },
    default_sort="-reported_at",
    tiebreak=Dispute.id,
)

Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(WRITE))]
DisputeId = RecordId
OrgFilter = Annotated[str | None, Query(min_length=1, max_length=32)]


@router.get("", response_model=Page[DisputeRead], summary="Disputes in the caller's scope")
def list_disputes(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(DISPUTE_LIST.params)],
) -> Page[DisputeRead]:
    return service.list_disputes(session=session, principal=principal, params=params)


@router.post("", response_model=DisputeDetail, status_code=201, summary="Record a dispute")
def create_dispute(principal: Writer, session: DbSession, body: DisputeCreate) -> DisputeDetail:
    dispute = service.create_dispute(session=session, principal=principal, data=body)
    return service.detail(session=session, principal=principal, dispute_id=dispute.id)


@router.get("/workflow", summary="The mediation state machine")
def dispute_workflow(principal: Reader) -> dict[str, Any]:
    return DISPUTE.as_graph()


@router.get("/dashboard", response_model=DashboardRead, summary="Dispute numbers of a station")
def dashboard(principal: Reader, session: DbSession, org_id: OrgFilter = None) -> DashboardRead:
    return service.dashboard(session=session, principal=principal, org_id=org_id)


@router.get("/{dispute_id}", response_model=DisputeDetail, summary="One dispute, in full")
def get_dispute(principal: Reader, session: DbSession, dispute_id: DisputeId) -> DisputeDetail:
    return service.detail(session=session, principal=principal, dispute_id=dispute_id)


@router.patch("/{dispute_id}", response_model=DisputeDetail, summary="Change facts, assign")
def update_dispute(
    principal: Writer, session: DbSession, dispute_id: DisputeId, body: DisputeUpdate
) -> DisputeDetail:
    service.update_dispute(session=session, principal=principal, dispute_id=dispute_id, data=body)
    return service.detail(session=session, principal=principal, dispute_id=dispute_id)


@router.post(
    "/{dispute_id}/transitions/{name}",
    response_model=DisputeDetail,
    summary="mediate, agree, refer, close_unresolved, reopen (notes where required)",
)
def apply_transition(
    principal: Writer,
    session: DbSession,
    dispute_id: DisputeId,
    name: TransitionName,
    body: Annotated[TransitionIn | None, Body()] = None,
) -> DisputeDetail:
    service.transition(
        session=session,
        principal=principal,
        dispute_id=dispute_id,
        name=name,
        notes=body.notes if body else None,
    )
    return service.detail(session=session, principal=principal, dispute_id=dispute_id)


@router.post(
    "/{dispute_id}/follow-ups",
    response_model=FollowUpRead,
    status_code=201,
    summary="Note a visit, call or mediation session and when the next one is due",
)
def add_follow_up(
    principal: Writer, session: DbSession, dispute_id: DisputeId, body: FollowUpCreate
) -> FollowUpRead:
    item = service.add_follow_up(
        session=session, principal=principal, dispute_id=dispute_id, data=body
    )
    return FollowUpRead.model_validate(item)
