"""HTTP API of the person index: persons, their history, the review queue, merges.

Reads need ``linkage:read`` (the queue ``linkage:review``: it shows both records of each
pair); decisions, merges and unmerges need ``linkage:review``. Every read of records is
scoped and audited; a person or pair outside the reader's scope answers 404. The request
session commits when a handler succeeds (:data:`DbSession`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from safecity.linkage import persons, review
from safecity.linkage.permissions import READ, REVIEW
from safecity.platform.api_params import RecordId
from safecity.platform.pagination import ListParams, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/linkage", tags=["linkage"])
Reader = Annotated[Principal, Depends(require(READ))]
Reviewer = Annotated[Principal, Depends(require(REVIEW))]


@router.get("/persons/{person_id}", response_model=persons.PersonView)
def read_person(
    person_id: RecordId,
    principal: Reader,
    session: DbSession,
    purpose: Annotated[
        str, Query(min_length=1, max_length=200, description="Why the records are read.")
    ] = review.PURPOSE,
) -> persons.PersonView:
    return persons.person_view(session, principal=principal, person_id=person_id, purpose=purpose)


@router.get("/persons/{person_id}/history", response_model=list[persons.ChangeRead])
def person_history(
    person_id: RecordId, principal: Reader, session: DbSession
) -> list[persons.ChangeRead]:
    return review.person_history(session=session, principal=principal, person_id=person_id)


@router.get("/review", response_model=Page[review.PairRead])
def review_queue(
    principal: Reviewer,
    session: DbSession,
    params: Annotated[ListParams, Depends(review.QUEUE.params)],
) -> Page[review.PairRead]:
    return review.queue(session=session, principal=principal, params=params)


@router.get("/review/{pair_id}", response_model=review.PairRead)
def read_pair(pair_id: RecordId, principal: Reader, session: DbSession) -> review.PairRead:
    return review.get_pair(session=session, principal=principal, pair_id=pair_id)


@router.post("/review/{pair_id}", response_model=review.DecisionRead)
def decide_pair(
    pair_id: RecordId, body: review.DecisionIn, principal: Reviewer, session: DbSession
) -> review.DecisionRead:
    return review.decide(
        session=session,
        principal=principal,
        pair_id=pair_id,
        decision=body.decision,
        reason=body.reason,
    )


@router.post("/persons/{person_id}/merge", response_model=persons.ChangeRead)
def merge_persons(
    person_id: RecordId, body: review.MergeIn, principal: Reviewer, session: DbSession
) -> persons.ChangeRead:
    change = review.merge_persons(
        session=session,
        principal=principal,
        survivor_id=person_id,
        absorbed_id=body.other,
        reason=body.reason,
    )
    return persons.ChangeRead.model_validate(change)


@router.post("/changes/{change_id}/unmerge", response_model=persons.ChangeRead)
def unmerge(
    change_id: RecordId, body: review.ReasonIn, principal: Reviewer, session: DbSession
) -> persons.ChangeRead:
    change = review.unmerge(
        session=session, principal=principal, change_id=change_id, reason=body.reason
    )
    return persons.ChangeRead.model_validate(change)
