"""HTTP routes of criminal review applications (复议 / 复核).

Staff (JSON): ``GET /api/case-reviews`` and ``/api/case-reviews/{id}`` (``cases:review``,
in the review's scope: a 复核 belongs to the next level up), ``GET /api/cases/{case_id}/reviews``
(``cases:read``, in the case's scope: stage, deadline and deciding unit, no grounds),
``POST /api/cases/{case_id}/reviews`` (an officer files for the citizen, ``cases:write``),
``POST /api/case-reviews/{id}/transitions/{name}`` (stage actions; the transition's own
permission is checked: ``cases:review``, or ``cases:write`` for ``request_reexam``).

Portal (no login, number + code): ``POST /api/portal/reviews`` (file),
``/api/portal/reviews/lookup`` (stages, dates, deadlines) and ``/api/portal/reviews/reexam``.
Every miss answers exactly like the portal lookup's miss.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from fastapi.requests import Request
from pydantic import BaseModel, ConfigDict, Field

from safecity.cases import portal, reviews
from safecity.cases.portal_api import limited, miss_response
from safecity.cases.reviews_models import CaseReview
from safecity.cases.workflow import READ, WRITE
from safecity.platform import workflow
from safecity.platform.api_params import RecordId
from safecity.platform.ratelimit import client_key
from safecity.platform.runtime import DbSession
from safecity.security import audit
from safecity.security.rbac import Principal, public, require

router = APIRouter(tags=["cases"])
portal_router = APIRouter(tags=["portal"], dependencies=[Depends(public)])

Reviewer = Annotated[Principal, Depends(require(reviews.REVIEW))]
Writer = Annotated[Principal, Depends(require(WRITE))]
Reader = Annotated[Principal, Depends(require(READ))]
Grounds = Annotated[str, Field(min_length=1, max_length=reviews.MAX_GROUNDS)]


class ReviewRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    org_id: str
    decision: str
    decision_at: datetime
    state: str
    channel: str
    grounds: str
    outcome_reason: str | None
    due_at: datetime | None
    stage_since: datetime
    created_at: datetime


class ReviewDetail(ReviewRead):
    transitions: list[str]


class ReviewStatusOut(BaseModel):
    id: str
    decision: str
    level: str
    stage: str
    label_zh: str
    due_at: datetime | None
    org_id: str


class FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grounds: Grounds


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000)


class PortalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=1, max_length=40)
    code: str = Field(min_length=1, max_length=40)


class PortalFileIn(PortalIn):
    grounds: Grounds


class PublicStageOut(BaseModel):
    at: datetime
    stage: str
    label_zh: str


class PublicReviewOut(BaseModel):
    decision: str
    stage: str
    due_at: datetime | None
    stages: list[PublicStageOut]


class PortalFiled(BaseModel):
    status: str
    due_at: datetime | None


def detail(session: DbSession, principal: Principal, review: CaseReview) -> ReviewDetail:
    audit.record(
        session,
        principal=principal,
        action="cases.review.read",
        target_type=reviews.RECORD,
        target_id=review.id,
        purpose="criminal review application",
    )
    names = [
        t.name
        for t in workflow.available_transitions(
            machine=reviews.MACHINE, record=review, principal=principal
        )
    ]
    return ReviewDetail.model_validate(
        {**ReviewRead.model_validate(review).model_dump(), "transitions": names}
    )


# --------------------------------------------------------------------------- staff


@router.get(
    "/api/case-reviews", response_model=list[ReviewRead], summary="Review applications in scope"
)
def list_reviews(
    principal: Reviewer, session: DbSession, state: str | None = None
) -> list[ReviewRead]:
    return [
        ReviewRead.model_validate(r)
        for r in reviews.list_reviews(session=session, principal=principal, state=state)
    ]


@router.get("/api/case-reviews/workflow", summary="The review state machine")
def review_workflow(principal: Reader) -> dict[str, Any]:
    return reviews.MACHINE.as_graph()


@router.get("/api/case-reviews/{review_id}", response_model=ReviewDetail, summary="One review")
def get_review(principal: Reviewer, session: DbSession, review_id: RecordId) -> ReviewDetail:
    review = reviews.get_review(session=session, principal=principal, review_id=review_id)
    return detail(session, principal, review)


@router.get(
    "/api/cases/{case_id}/reviews",
    response_model=list[ReviewStatusOut],
    summary="A case's review applications: stage, deadline, deciding unit (case's scope)",
)
def case_reviews(principal: Reader, session: DbSession, case_id: RecordId) -> Any:
    return [
        ReviewStatusOut.model_validate(r, from_attributes=True)
        for r in reviews.case_reviews(session=session, principal=principal, case_id=case_id)
    ]


@router.post(
    "/api/cases/{case_id}/reviews",
    response_model=ReviewDetail,
    status_code=201,
    summary="File a review application for the citizen (复议)",
)
def file_review(
    principal: Writer, session: DbSession, case_id: RecordId, body: FileIn
) -> ReviewDetail:
    review = reviews.file_for_citizen(
        session, principal=principal, case_id=case_id, grounds=body.grounds
    )
    return detail(session, principal, review)


@router.post(
    "/api/case-reviews/{review_id}/transitions/{name}",
    response_model=ReviewDetail,
    summary="accept, reject, start, uphold, overturn, request_reexam, reexam_*",
)
def apply_transition(
    principal: Reader,
    session: DbSession,
    review_id: RecordId,
    name: Annotated[str, Path(max_length=40)],
    body: Annotated[ReasonIn | None, Body()] = None,
) -> ReviewDetail:
    review = reviews.act(
        session,
        principal=principal,
        review_id=review_id,
        name=name,
        reason=body.reason if body else None,
    )
    return detail(session, principal, review)


# --------------------------------------------------------------------------- portal

MISSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No case matches (always the same answer)"}
}


@portal_router.post(
    "/api/portal/reviews",
    response_model=PortalFiled,
    status_code=201,
    dependencies=limited,
    responses=MISSES,
    summary="File a review application against the case's decision (number + code)",
)
def portal_file(request: Request, session: DbSession, body: PortalFileIn) -> Any:
    review = reviews.file_from_portal(
        session,
        client=client_key(request.scope),
        number=body.number,
        code=body.code,
        grounds=body.grounds,
    )
    if review is None:
        return miss_response()
    return PortalFiled(status=review.state, due_at=review.due_at)


@portal_router.post(
    "/api/portal/reviews/lookup",
    response_model=list[PublicReviewOut],
    dependencies=limited,
    responses=MISSES,
    summary="A case's review applications: stages, dates, deadlines (number + code)",
)
def portal_lookup(request: Request, session: DbSession, body: PortalIn) -> Any:
    case = portal.verify(
        session,
        client=client_key(request.scope),
        number=body.number,
        code=body.code,
        action="cases.portal.reviews",
    )
    if case is None:
        return miss_response()
    return [
        PublicReviewOut.model_validate(r, from_attributes=True)
        for r in reviews.public_reviews(session, case=case)
    ]


@portal_router.post(
    "/api/portal/reviews/reexam",
    response_model=PortalFiled,
    status_code=201,
    dependencies=limited,
    responses=MISSES,
    summary="Ask the next level up to re-examine (复核) after the 复议 outcome",
)
def portal_reexam(request: Request, session: DbSession, body: PortalIn) -> Any:
    review = reviews.reexam_from_portal(
        session, client=client_key(request.scope), number=body.number, code=body.code
    )
    if review is None:
        return miss_response()
    return PortalFiled(status=review.state, due_at=review.due_at)
