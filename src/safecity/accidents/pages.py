"""Phone pages of the quick flow (no login) and the officers' console page.

Drivers: ``/accidents`` (checklist + open, or join by code), ``/accidents/join?code=``
(what A's QR code opens), then each driver's page ``/accidents/{ref}/{A|B}``. A driver is
recognised by a party token in an HttpOnly, SameSite=Lax cookie scoped to that page's
path (so one browser may even hold both drivers in a demo); forms are plain HTML posts
(no JavaScript needed). A cross-site post carries no Lax cookie, so it acts for nobody.
On the data step a driver may fill the licence or the plate from an e-certificate QR
(:mod:`safecity.accidents.credentials`): ``static/console/accidents_credential.js`` scans
it with the camera (vendored jsQR) into the paste box and posts the same form.

Officers: ``/console/accidents`` lists escalated cases in scope and the median times
t0→t2 and t2→t3 per district.
"""

from __future__ import annotations

from typing import Annotated, Any

import segno
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    File,
    Form,
    Path,
    Query,
    Request,
    UploadFile,
)
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.accidents import (
    agreement_pdf,
    credentials,
    evidence,
    insurers,
    review,
    service,
    signing,
)
from safecity.accidents.models import POSITIONS, AccidentCase, AccidentParty, InsurerNotice
from safecity.accidents.schemas import ELIGIBILITY, DeclarationIn, OpenIn, PartyDataIn, ReviewIn
from safecity.accidents.workflow import READ, REVIEW
from safecity.console.pages import _translator, console_require, render
from safecity.platform.api_params import RecordId
from safecity.platform.errors import Conflict, InvalidInput, NotFound, SafeCityError
from safecity.platform.middleware import register_upload_limit
from safecity.platform.ratelimit import rate_limit
from safecity.platform.runtime import DbSession, Runtime, get_runtime
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal, public

BASE = "/accidents"
COOKIE = "safecity_accident"
DEFAULT_PLACE = (31.2304, 121.4737)  # People's Square, when the phone gives no position

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])
console = APIRouter(include_in_schema=False)
limited = [Depends(rate_limit("accidents", per_minute=60, burst=30))]

Ref = Annotated[str, Path(pattern=r"^SH[A-Z0-9]{8}$")]
Role = Annotated[str, Path(pattern=r"^[AB]$")]
Position = Annotated[str, Path(pattern=r"^(plate_a|plate_b|contact|wide_1|wide_2)$")]
CredKind = Annotated[str, Path(pattern=r"^(licence|registration)$")]
#: The driver's page may use the camera (scanning an e-certificate QR), nothing else new.
PERMISSIONS = (
    "camera=(self), microphone=(), geolocation=(self), payment=(), usb=(), interest-cohort=()"
)
Short = Annotated[str, Form(max_length=40)]
Reader = Annotated[Principal, Depends(console_require(READ))]


def _lang(request: Request) -> str:
    return _translator(request).lang


def _page(ref: str, role: str) -> str:
    return f"{BASE}/{ref}/{role}"


def _set_token(response: Response, request: Request, ref: str, role: str, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=7 * 24 * 3600,
        path=_page(ref, role),
        httponly=True,
        samesite="lax",
        secure=get_runtime(request).settings.cookie_secure,
    )


def _party(
    request: Request, session: Session, ref: str, role: str
) -> tuple[AccidentCase, AccidentParty]:
    return service.authenticate(
        session=session, ref=ref, role=role, token=request.cookies.get(COOKIE)
    )


def _situations(lang: str) -> list[dict[str, str]]:
    table = service.rule_table()
    return [
        {"code": s.code, "label": s.zh if lang == "zh" else s.en} for s in table.situations.values()
    ]


def _render_party(
    request: Request,
    session: Session,
    case: AccidentCase,
    party: AccidentParty,
    *,
    error: str | None = None,
    status_code: int = 200,
    cred: credentials.Checked | None = None,
) -> HTMLResponse:
    lang = _lang(request)
    found = service.parties(session, case)
    other = found.get("B" if party.role == "A" else "A")
    join_url = qr = code = ""
    if party.role == "A" and case.state == "opened":
        code = service.join_code_for(session, case.id)
        join_url = f"{str(request.base_url).rstrip('/')}{BASE}/join?code={code}"
        qr = segno.make(join_url, error="m").svg_data_uri(scale=4, border=2)
    notices = session.scalars(select(InsurerNotice).where(InsurerNotice.case_id == case.id))
    response = render(
        request,
        "accidents/party.html",
        status_code=status_code,
        case=case,
        party=party,
        other=other,
        positions=POSITIONS,
        photos={p.position: p for p in service.photos(session, case)},
        missing=service.missing(session, case),
        situations=_situations(lang),
        insurers=list(insurers.INSURERS.values()),
        join_url=join_url,
        join_code=code,
        qr=qr,
        notices=list(notices),
        signed=bool(
            party.otp_hash is None and party.otp_sent and case.state != "evidence_complete"
        ),
        error=error,
        page=_page(case.ref, party.role),
        cred=cred,
        sources={
            name: credentials.source_of(party, name)
            for name in ("plate", "licence_no", "holder_name")
        },
    )
    response.headers["Permissions-Policy"] = PERMISSIONS
    return response


# --------------------------------------------------------------------------- start, join


@router.get(BASE, response_class=HTMLResponse)
def start(request: Request) -> HTMLResponse:
    return render(
        request, "accidents/start.html", items=ELIGIBILITY, place=DEFAULT_PLACE, error=None
    )


@router.post(BASE, response_class=HTMLResponse, dependencies=limited)
async def open_case(request: Request, session: DbSession) -> Response:
    form = await request.form()
    try:
        data = OpenIn(
            lat=float(str(form.get("lat") or DEFAULT_PLACE[0])),
            lng=float(str(form.get("lng") or DEFAULT_PLACE[1])),
            eligibility={k: form.get(k) == "yes" for k in ELIGIBILITY},
        )
        opened = service.open_case(session=session, data=data)
    except (ValueError, ValidationError, InvalidInput):
        return render(
            request,
            "accidents/start.html",
            status_code=422,
            items=ELIGIBILITY,
            place=DEFAULT_PLACE,
            error="invalid",
        )
    response = RedirectResponse(_page(opened.case.ref, "A"), status_code=303)
    _set_token(response, request, opened.case.ref, "A", opened.token)
    return response


@router.get(BASE + "/join", response_class=HTMLResponse)
def join_form(request: Request, code: Annotated[str, Query(max_length=16)] = "") -> HTMLResponse:
    return render(request, "accidents/join.html", code=code[:16], error=None)


@router.post(BASE + "/join", response_class=HTMLResponse, dependencies=limited)
def join(request: Request, session: DbSession, code: Short) -> Response:
    try:
        opened = service.join_case(session=session, join_code=code)
    except (NotFound, Conflict) as exc:
        kind = "closed" if "closed" in exc.detail else "full" if exc.status == 409 else "unknown"
        return render(request, "accidents/join.html", status_code=exc.status, code="", error=kind)
    response = RedirectResponse(_page(opened.case.ref, "B"), status_code=303)
    _set_token(response, request, opened.case.ref, "B", opened.token)
    return response


# --------------------------------------------------------------------------- a driver's page


@router.get(BASE + "/{ref}/{role}", response_class=HTMLResponse)
def party_page(request: Request, session: DbSession, ref: Ref, role: Role) -> HTMLResponse:
    case, party = _party(request, session, ref, role)
    return _render_party(request, session, case, party)


# a phone photo is larger than the platform's default body limit: this route takes 8 MiB
# plus the multipart envelope (the evidence module still refuses photos over 8 MiB)
register_upload_limit(
    BASE + r"/[^/]+/[^/]+/photos/[^/]+", evidence.PHOTO_LIMITS.max_bytes + 64 * 1024
)


@router.post(BASE + "/{ref}/{role}/photos/{position}", dependencies=limited)
def upload_photo(
    request: Request,
    session: DbSession,
    ref: Ref,
    role: Role,
    position: Position,
    photo: Annotated[UploadFile, File()],
) -> Response:
    """Not an image → 422, too large → 413 (problem+json); flags never refuse a photo."""
    case, party = _party(request, session, ref, role)
    data = photo.file.read(evidence.PHOTO_LIMITS.max_bytes + 1)
    evidence.add_photo(session=session, case=case, party=party, position=position, data=data)
    return RedirectResponse(_page(ref, role) + "#photos", status_code=303)


def _form_action(request: Request, session: Session, ref: str, role: str, action: Any) -> Response:
    case, party = _party(request, session, ref, role)
    try:
        action(case, party)
    except (ValidationError, InvalidInput, Conflict) as exc:
        session.rollback()
        case, party = _party(request, session, ref, role)
        status = 422 if isinstance(exc, ValidationError) else exc.status
        return _render_party(request, session, case, party, error=str(status), status_code=status)
    return RedirectResponse(_page(ref, role), status_code=303)


@router.post(BASE + "/{ref}/{role}/road-cleared", dependencies=limited)
def road_cleared(request: Request, session: DbSession, ref: Ref, role: Role) -> Response:
    return _form_action(
        request,
        session,
        ref,
        role,
        lambda c, p: service.confirm_road_cleared(session=session, case=c, party=p),
    )


@router.post(BASE + "/{ref}/{role}/data", dependencies=limited)
def party_data(
    request: Request,
    session: DbSession,
    ref: Ref,
    role: Role,
    plate: Short,
    licence_no: Short,
    insurer_code: Short,
    policy_no: Short,
    phone: Short,
) -> Response:
    def act(c: AccidentCase, p: AccidentParty) -> None:
        data = PartyDataIn(
            plate=plate.strip(),
            licence_no=licence_no.strip(),
            insurer_code=insurer_code,
            policy_no=policy_no.strip(),
            phone=phone.replace(" ", "").replace("-", ""),
        )
        service.set_party_data(session=session, case=c, party=p, data=data)

    return _form_action(request, session, ref, role, act)


@router.post(BASE + "/{ref}/{role}/credentials/{kind}", dependencies=limited)
def credential(
    request: Request,
    session: DbSession,
    ref: Ref,
    role: Role,
    kind: CredKind,
    text: Annotated[str, Form(max_length=credentials.MAX_TEXT)] = "",
) -> Response:
    """Fill the licence (and holder name) or the plate from a scanned or pasted ``SC1:``
    e-certificate QR. A refused one re-renders the page (422) with its reason and changes
    no data; a revoked / suspended licence is still committed as a flag (and escalation)."""
    case, party = _party(request, session, ref, role)
    try:
        checked = credentials.fill(
            session=session,
            case=case,
            party=party,
            kind=kind,
            text=text,
            cache=credentials.cache_of(get_runtime(request)),
        )
    except (InvalidInput, Conflict) as exc:
        session.rollback()
        case, party = _party(request, session, ref, role)
        return _render_party(
            request, session, case, party, error=str(exc.status), status_code=exc.status
        )
    if not checked.ok:
        return _render_party(request, session, case, party, cred=checked, status_code=422)
    return RedirectResponse(_page(ref, role) + "#credentials", status_code=303)


@router.post(BASE + "/{ref}/{role}/declaration", dependencies=limited)
async def declaration(request: Request, session: DbSession, ref: Ref, role: Role) -> Response:
    form = await request.form()
    own = [str(v) for v in form.getlist("own")]
    other = [str(v) for v in form.getlist("other")]
    return _form_action(
        request,
        session,
        ref,
        role,
        lambda c, p: service.declare(
            session=session, case=c, party=p, data=DeclarationIn(own=own, other=other)
        ),
    )


@router.post(BASE + "/{ref}/{role}/otp", dependencies=limited)
def otp(request: Request, session: DbSession, ref: Ref, role: Role) -> Response:
    return _form_action(
        request,
        session,
        ref,
        role,
        lambda c, p: signing.request_otp(session=session, case=c, party=p),
    )


def _deliver(runtime: Runtime, ids: list[str]) -> None:
    """After the response: push the new notices at once (the job retries the rest)."""
    insurers.deliver(runtime, ids)


@router.post(BASE + "/{ref}/{role}/sign", dependencies=limited)
def sign(
    request: Request,
    session: DbSession,
    background: BackgroundTasks,
    ref: Ref,
    role: Role,
    code: Annotated[str, Form(max_length=8)],
) -> Response:
    outcome: list[str] = []

    def act(c: AccidentCase, p: AccidentParty) -> None:
        outcome.append(signing.sign(session=session, case=c, party=p, code=code))

    response = _form_action(request, session, ref, role, act)
    if outcome == ["wrong_code"]:  # the failed attempt is committed with this answer
        case, party = _party(request, session, ref, role)
        return _render_party(request, session, case, party, error="wrong_code", status_code=422)
    if outcome == ["sealed"]:
        case, _ = _party(request, session, ref, role)
        background.add_task(_deliver, get_runtime(request), signing.notice_ids(session, case))
    return response


@router.get(BASE + "/{ref}/{role}/sealed.json")
def sealed(request: Request, session: DbSession, ref: Ref, role: Role) -> JSONResponse:
    case, _ = _party(request, session, ref, role)
    return JSONResponse(
        signing.sealed_document(session, case),
        headers={"Content-Disposition": f'attachment; filename="{ref}-sealed.json"'},
    )


@router.get(BASE + "/{ref}/{role}/agreement.pdf")
def agreement(request: Request, session: DbSession, ref: Ref, role: Role) -> Response:
    """The sealed agreement as a PDF (a copy for people; the JSON seal is what counts)."""
    case, _ = _party(request, session, ref, role)
    return Response(
        agreement_pdf.render_agreement_pdf(signing.sealed_document(session, case)),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{ref}-agreement.pdf"'},
    )


# --------------------------------------------------------------------------- console


@console.get("/console/accidents", response_class=HTMLResponse)
def console_list(request: Request, session: DbSession, principal: Reader) -> HTMLResponse:
    rows = review.timings(session=session, principal=principal)
    top = max([r.median_t0_t2_s or 0 for r in rows] + [r.median_t2_t3_s or 0 for r in rows] + [1])
    return render(
        request,
        "accidents/console.html",
        principal=principal,
        active="accidents",
        cases=review.escalated(session=session, principal=principal),
        timings=rows,
        scale=240 / top,
    )


Reviewer = Annotated[Principal, Depends(console_require(REVIEW))]
Decision = Annotated[str, Path(pattern=r"^(rule|resume|refer)$")]


def _console_detail(
    request: Request,
    session: Session,
    principal: Principal,
    case_id: str,
    *,
    error: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "accidents/detail.html",
        status_code=status_code,
        principal=principal,
        active="accidents",
        d=review.detail(session=session, principal=principal, case_id=case_id),
        can_review=principal.can(REVIEW),
        error=error,
        csrf=csrf_token_for(request),
    )


@console.get("/console/accidents/{case_id}", response_class=HTMLResponse)
def console_case(
    request: Request, session: DbSession, principal: Reader, case_id: RecordId
) -> HTMLResponse:
    return _console_detail(request, session, principal, case_id)


@console.post("/console/accidents/{case_id}/decisions/{name}", response_class=HTMLResponse)
def console_decide(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    case_id: RecordId,
    name: Decision,
    notes: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    share_a: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    try:
        data = ReviewIn(notes=notes, share_a=int(share_a) if share_a.isdigit() else None)
        review.decide_escalation(
            session=session, principal=principal, case_id=case_id, name=name, data=data
        )
    except NotFound:
        raise
    except ValidationError:
        session.rollback()
        return _console_detail(request, session, principal, case_id, error=422, status_code=422)
    except SafeCityError as exc:  # the workflow writes nothing unless every check passed
        session.rollback()
        return _console_detail(
            request, session, principal, case_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"/console/accidents/{case_id}", status_code=303)
