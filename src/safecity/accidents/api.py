"""HTTP API of the accidents domain.

* ``/api/accidents`` (officers): list and read cases in scope (``accidents:read``), decide
  escalated ones (``accidents:review``: ``rule``, ``resume``, ``refer``), timing medians.
* ``POST /api/accidents/insurers/{code}/reports`` (public, HMAC-signed by the insurer):
  an insurer reports a claim assessed or paid.
* ``/demo-insurer/...`` (public, demo only): the demo insurer's webhook receiver, and a
  button-press that makes it report a claim assessed or paid.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from safecity.accidents import insurers, pages, review
from safecity.accidents.models import AccidentCase
from safecity.accidents.schemas import CaseDetail, CaseRead, DistrictTiming, ReviewIn
from safecity.accidents.workflow import ACCIDENT, READ, REVIEW
from safecity.platform.api_params import RecordId
from safecity.platform.errors import InvalidInput
from safecity.platform.pagination import ListParams, ListSpec, Page
from safecity.platform.ratelimit import rate_limit
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security.rbac import Principal, public, require

router = APIRouter(prefix="/api/accidents", tags=["accidents"])
public_router = APIRouter(tags=["accidents"], dependencies=[Depends(public)])
limited = [Depends(rate_limit("accidents-insurers", per_minute=120, burst=60))]

CASE_LIST = ListSpec(
    sort={"updated_at": AccidentCase.updated_at, "t0_started_at": AccidentCase.t0_started_at},
    filters={"state": AccidentCase.state, "org_id": AccidentCase.org_id},
    default_sort="-updated_at",
    tiebreak=AccidentCase.id,
)

Reader = Annotated[Principal, Depends(require(READ))]
Reviewer = Annotated[Principal, Depends(require(REVIEW))]
Decision = Annotated[str, Path(pattern=r"^(rule|resume|refer)$")]
InsurerCode = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
ClaimId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{4,64}$")]
ReportEvent = Annotated[str, Path(pattern=r"^(assessed|paid)$")]


@router.get("", response_model=Page[CaseRead], summary="Accident cases in the caller's scope")
def list_cases(
    principal: Reader, session: DbSession, params: Annotated[ListParams, Depends(CASE_LIST.params)]
) -> Page[CaseRead]:
    return review.list_cases(session=session, principal=principal, params=params)


@router.get("/workflow", summary="The accident case's state machine")
def case_workflow(principal: Reader) -> dict[str, Any]:
    return ACCIDENT.as_graph()


@router.get("/timings", response_model=list[DistrictTiming], summary="Median t0→t2, t2→t3")
def timings(principal: Reader, session: DbSession) -> list[DistrictTiming]:
    return review.timings(session=session, principal=principal)


@router.get("/{case_id}", response_model=CaseDetail, summary="One case (personal data audited)")
def get_case(principal: Reader, session: DbSession, case_id: RecordId) -> CaseDetail:
    return review.detail(session=session, principal=principal, case_id=case_id)


@router.get(
    "/{case_id}/photos/{photo_id}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}}},
    summary="A photo (original for the own station; else blurred, without EXIF); audited",
)
def get_photo(
    principal: Reader,
    session: DbSession,
    case_id: RecordId,
    photo_id: RecordId,
    shareable: bool = False,
    blur: Annotated[str, Query(max_length=400, pattern=r"^[0-9,;]*$")] = "",
) -> Response:
    data, content_type = review.photo_bytes(
        session=session,
        principal=principal,
        case_id=case_id,
        photo_id=photo_id,
        shareable=shareable,
        boxes=review.parse_boxes(blur),
    )
    return Response(data, media_type=content_type, headers={"Cache-Control": "no-store"})


@router.post(
    "/{case_id}/decisions/{name}",
    response_model=CaseDetail,
    summary="Decide an escalated case: rule (share_a), resume, refer",
)
def decide(
    principal: Reviewer, session: DbSession, case_id: RecordId, name: Decision, body: ReviewIn
) -> CaseDetail:
    review.decide_escalation(
        session=session, principal=principal, case_id=case_id, name=name, data=body
    )
    return review.detail(session=session, principal=principal, case_id=case_id)


# --------------------------------------------------------------------------- insurers


@public_router.post(
    "/api/accidents/insurers/{code}/reports",
    dependencies=limited,
    summary="An insurer reports a claim assessed or paid (body signed with HMAC-SHA256)",
)
async def insurer_report(request: Request, session: DbSession, code: InsurerCode) -> Any:
    body = await request.body()
    key_dir = get_runtime(request).settings.effective_key_dir
    row = insurers.apply_report(
        session,
        key_dir=key_dir,
        code=code,
        body=body,
        signature=request.headers.get(insurers.SIGNATURE_HEADER),
    )
    return {"status": "recorded", "claim_id": row.external_claim_id}


@public_router.post(
    "/demo-insurer/notices",
    dependencies=limited,
    summary="The demo insurer's webhook: acknowledges a signed notice of loss with a claim id",
)
async def demo_notices(request: Request) -> Any:
    key_dir = get_runtime(request).settings.effective_key_dir
    reply = insurers.demo_receive(key_dir, await request.body(), request.headers)
    return JSONResponse(reply.body, status_code=reply.status)


@public_router.post(
    "/demo-insurer/claims/{code}/{claim_id}/{event}",
    dependencies=limited,
    summary="Demo only: make the demo insurer report a claim assessed or paid",
)
def demo_report(
    request: Request, session: DbSession, code: InsurerCode, claim_id: ClaimId, event: ReportEvent
) -> Any:
    key_dir = get_runtime(request).settings.effective_key_dir
    if insurers.get_insurer(code).url != insurers.DEMO_URL:
        raise InvalidInput("only the demo insurers report through this route")
    body = insurers.canonical({"claim_id": claim_id, "event": event})
    secret = insurers.secret_for(key_dir, code)
    insurers.apply_report(
        session, key_dir=key_dir, code=code, body=body, signature=insurers.sign(secret, body)
    )
    return {"status": "reported", "claim_id": claim_id, "event": event}


#: Everything the accidents domain serves (the app includes this one router).
routes = APIRouter()
for _router in (router, public_router, pages.router, pages.console):
    routes.include_router(_router)
