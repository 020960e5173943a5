"""HTTP API of e-service applications (``/api/eservices``).

* ``GET /catalogue``, ``GET /catalogue/{code}`` (public): the service catalogue, with
  each item's materials, deadline and the JSON Schema of its form.
* Applicant (``eservices:apply``): ``POST /applications`` (start a prefilled draft),
  ``PUT /applications/{id}/pages/{page}`` (save a page; field errors as problem+json
  ``errors``), ``POST /applications/{id}/attachments`` (multipart: ``material_code`` and
  ``file``), ``POST /applications/{id}/submit`` (idempotency key in the body or the
  ``Idempotency-Key`` header), ``POST /applications/{id}/supplement``,
  ``GET /applications/mine``.
* Applicant or handling staff (``eservices:view``; the service checks which):
  ``GET /applications/{id}``, its copy and its uploaded files.
* Staff: ``GET /queue`` (``eservices:read``), ``POST /applications/{id}/actions/{action}``
  (``eservices:review``; deciding and issuing also need ``eservices:decide``),
  ``GET /stats`` (``eservices:stats``), ``GET /workflow``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Path, Query, UploadFile
from fastapi.responses import Response

from safecity.eservices import forms, service
from safecity.eservices.catalogue import ServiceItem, materials_cut
from safecity.eservices.schemas import (
    ActIn,
    ApplicationDetail,
    ApplicationRead,
    AttachmentRead,
    ItemSummary,
    PageIn,
    StartIn,
    Stats,
)
from safecity.eservices.workflow import APPLICATION, APPLY, READ, REVIEW, STATS, VIEW
from safecity.platform.api_params import RecordId
from safecity.platform.downloads import file_download
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, public, require

router = APIRouter(prefix="/api/eservices", tags=["eservices"])
public_router = APIRouter(
    prefix="/api/eservices", tags=["eservices"], dependencies=[Depends(public)]
)

Applicant = Annotated[Principal, Depends(require(APPLY))]
Viewer = Annotated[Principal, Depends(require(VIEW))]
Reader = Annotated[Principal, Depends(require(READ))]
Reviewer = Annotated[Principal, Depends(require(REVIEW))]
StatsReader = Annotated[Principal, Depends(require(STATS))]
ItemCode = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]{0,63}$")]
PageId = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
StaffAction = Annotated[
    str, Path(pattern=r"^(accept|review|request_supplement|approve|reject|issue)$")
]


def _summary(item: ServiceItem) -> ItemSummary:
    pulled = sum(m.source == "pulled" for m in item.materials)
    return ItemSummary(
        code=item.code,
        name_zh=item.name.zh,
        name_en=item.name.en,
        type=item.type,
        departments=list(item.departments),
        deadline_workdays=item.deadline.workdays,
        deadline_basis=item.deadline.basis,
        single_window=item.single_window,
        materials_total=len(item.materials),
        materials_pulled=pulled,
        certificates=[c.type for c in item.certificates],
    )


@public_router.get("/catalogue", response_model=list[ItemSummary], summary="The service catalogue")
def catalogue_list() -> list[ItemSummary]:
    return [_summary(i) for i in service.catalogue().items.values()]


@public_router.get("/catalogue/{code}", summary="One catalogue item, with its form's JSON Schema")
def catalogue_item(code: ItemCode) -> dict[str, Any]:
    cat = service.catalogue()
    item = cat.get(code)
    share = materials_cut(cat).items[item.code]
    return {
        **_summary(item).model_dump(),
        "legal_basis": [
            {"zh": b.title.zh, "en": b.title.en, "article": b.article} for b in item.legal_basis
        ],
        "deadline": {
            "workdays": item.deadline.workdays,
            "basis": item.deadline.basis,
            "source": item.deadline.source,
        },
        "pauses": list(item.pauses),
        "materials": [
            {
                "code": m.code,
                "zh": m.name.zh,
                "en": m.name.en,
                "source": m.source,
                "pulled_from": m.pulled_from,
                "accept": list(m.accept),
                "required": m.required,
                "department": m.department,
            }
            for m in item.materials
        ],
        "parts": [
            {
                "department": p.department,
                "zh": p.task.zh,
                "en": p.task.en,
                "deadline_workdays": p.deadline_workdays,
                "certificate": p.certificate,
            }
            for p in item.parts
        ],
        "share_pulled": share.share_pulled,
        "form_schema": forms.answers_schema(forms.form_for_item(item)),
    }


@public_router.get("/workflow", summary="The application's state machine")
def application_workflow() -> dict[str, Any]:
    return APPLICATION.as_graph()


# --------------------------------------------------------------------------- applicant


@router.post(
    "/applications",
    response_model=ApplicationRead,
    status_code=201,
    summary="Start an application (a draft prefilled from your record)",
)
def start(principal: Applicant, session: DbSession, body: StartIn) -> ApplicationRead:
    return service.start_application(session=session, principal=principal, item_code=body.item_code)


@router.get("/applications/mine", response_model=list[ApplicationRead], summary="Your applications")
def mine(principal: Applicant, session: DbSession) -> list[ApplicationRead]:
    return service.my_applications(session=session, principal=principal)


@router.put(
    "/applications/{application_id}/pages/{page_id}",
    response_model=ApplicationRead,
    summary="Save one page of answers (422 with field errors when they do not pass)",
)
def save(
    principal: Applicant,
    session: DbSession,
    application_id: RecordId,
    page_id: PageId,
    body: PageIn,
) -> ApplicationRead:
    return service.save_page(
        session=session,
        principal=principal,
        application_id=application_id,
        page_id=page_id,
        answers=body.answers,
    )


@router.post(
    "/applications/{application_id}/attachments",
    response_model=AttachmentRead,
    status_code=201,
    summary="Upload a material (type and size checked; stored by SHA-256)",
)
async def attach(
    principal: Applicant,
    session: DbSession,
    application_id: RecordId,
    material_code: Annotated[str, Form(pattern=r"^[a-z][a-z0-9-]{0,63}$")],
    file: Annotated[UploadFile, File(description="PDF, JPEG or PNG, as the material allows")],
) -> AttachmentRead:
    data = await file.read(service.MAX_ATTACHMENT_BYTES + 1)
    if len(data) > service.MAX_ATTACHMENT_BYTES:
        raise PayloadTooLarge(f"file is larger than {service.MAX_ATTACHMENT_BYTES} bytes")
    return service.add_attachment(
        session=session,
        principal=principal,
        application_id=application_id,
        material_code=material_code,
        filename=file.filename or "upload",
        content_type=file.content_type or "",
        data=data,
    )


@router.post(
    "/applications/{application_id}/submit",
    response_model=ApplicationRead,
    summary="Submit (idempotent: the same key returns the same application)",
)
def submit(
    principal: Applicant,
    session: DbSession,
    application_id: RecordId,
    body: dict[str, Any] | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=120)] = None,
) -> ApplicationRead:
    key = (body or {}).get("idempotency_key") or idempotency_key
    if not isinstance(key, str):
        raise InvalidInput("send an idempotency_key (body) or an Idempotency-Key header")
    return service.submit(
        session=session, principal=principal, application_id=application_id, idempotency_key=key
    )


@router.post(
    "/applications/{application_id}/supplement",
    response_model=ApplicationRead,
    summary="Tell the department the requested materials are in (the clock runs again)",
)
def supplement(
    principal: Applicant, session: DbSession, application_id: RecordId, body: ActIn
) -> ApplicationRead:
    return service.act(
        session=session,
        principal=principal,
        application_id=application_id,
        action="supplement",
        comment=body.comment,
    )


# --------------------------------------------------------------------------- either side


@router.get(
    "/applications/{application_id}",
    response_model=ApplicationDetail,
    summary="One application in full (its applicant, or the handling org: audited)",
)
def one(principal: Viewer, session: DbSession, application_id: RecordId) -> ApplicationDetail:
    return service.get_application(
        session=session, principal=principal, application_id=application_id
    )


@router.get(
    "/applications/{application_id}/copy",
    summary="A copy of the application (JSON; ?format=pdf for a PDF)",
    response_model=None,
)
def copy(
    principal: Viewer,
    session: DbSession,
    application_id: RecordId,
    format: Annotated[str, Query(pattern=r"^(json|pdf)$")] = "json",
) -> Any:
    detail = service.get_application(
        session=session, principal=principal, application_id=application_id
    )
    item = service.catalogue().get(detail.item_code)
    definition = forms.form_for_item(item)
    draft = forms.Draft(
        form_id=detail.form_id,
        form_version=detail.form_version,
        reference=detail.reference,
        answers=detail.answers,
        current_page=detail.current_page,
        created_at=detail.created_at,
        updated_at=detail.updated_at,
        submitted_at=detail.submitted_at,
    )
    if format == "pdf":
        return Response(
            forms.copy_pdf(definition, draft),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{detail.reference}.pdf"'},
        )
    return forms.copy_json(definition, draft)


@router.get(
    "/applications/{application_id}/attachments/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}}}},
    summary="An uploaded material (audited for staff)",
)
def attachment(
    principal: Viewer, session: DbSession, application_id: RecordId, attachment_id: RecordId
) -> Response:
    data, ctype, name = service.attachment_bytes(
        session=session,
        principal=principal,
        application_id=application_id,
        attachment_id=attachment_id,
    )
    return file_download(data, ctype, name)


# --------------------------------------------------------------------------- staff


@router.get(
    "/queue",
    response_model=list[ApplicationRead],
    summary="Applications of your org(s), soonest due first",
)
def queue(
    principal: Reader,
    session: DbSession,
    state: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_QUEUE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[ApplicationRead]:
    return service.staff_queue(
        session=session, principal=principal, state=state, limit=limit, offset=offset
    )


@router.post(
    "/applications/{application_id}/actions/{action}",
    response_model=ApplicationRead,
    summary="Act on an application: accept, review, request_supplement, approve, reject, issue",
)
def act(
    principal: Reviewer,
    session: DbSession,
    application_id: RecordId,
    action: StaffAction,
    body: ActIn | None = None,
) -> ApplicationRead:
    return service.act(
        session=session,
        principal=principal,
        application_id=application_id,
        action=action,
        comment=body.comment if body else None,
    )


@router.get("/stats", response_model=Stats, summary="Working days per item; materials pulled")
def stats(principal: StatsReader, session: DbSession) -> Stats:
    return Stats.model_validate(service.stats(session=session, principal=principal))


#: Everything this module serves (the app includes this one router).
routes = APIRouter()
for _router in (public_router, router):
    routes.include_router(_router)
