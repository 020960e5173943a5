"""Citizens' e-service pages (一网通办), GOV.UK-Forms style: one question per page.

``/services`` lists the catalogue; ``/services/{item}`` is an item's start page (legal
basis, deadline, which materials are pulled from the citizen's e-licences and which are
uploaded). Starting makes a prefilled draft; each form page is a plain HTML form (the
question types come from the JSON form definitions, :mod:`safecity.eservices.forms`),
errors come back as an error summary linking to each field, answers are saved page by page
(so the citizen can leave and resume from "my applications"), uploads go per material,
and the check-your-answers page sends the application with an idempotency key in a hidden
field (a double click or a resent form never makes two applications). After sending, the
confirmation page shows the reference number and a downloadable copy (PDF or JSON).

``/services/applications`` lists the citizen's applications (state, due date in working
days, timeline, supplement requests); an issued one shows the certificate's QR (for the
whole certificate or a purpose profile such as a hotel check-in) and its PDF.

Citizens sign in at ``/services/login`` (:mod:`safecity.eservices.pages_auth`); pages that
need a login redirect there, and every form carries the session's CSRF token. Question
widgets and shared helpers are in :mod:`safecity.eservices.pages_forms`; the staff pages
(``/console/eservices``) in :mod:`safecity.eservices.pages_console`. This router includes
both, so the app mounts one router.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload

from safecity.console.pages import _translator, render
from safecity.eservices import forms, pages_auth, pages_console, registry, service
from safecity.eservices.catalogue import ServiceItem, default_catalogue
from safecity.eservices.credentials import qr_png
from safecity.eservices.credentials.profiles import PROFILES
from safecity.eservices.pages_auth import BASE, Citizen, signed_in
from safecity.eservices.pages_forms import (
    ATTACHMENT_MAX_BYTES,
    answer_rows,
    attachment_response,
    days_left,
    definition_of,
    error_text,
    field_errors,
    item_of,
    local_today,
    material_rows,
    mib,
    parse_page,
    types_text,
    uploads,
    visible_pages,
    widget_for,
)
from safecity.platform.api_params import RecordId
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from safecity.platform.middleware import register_upload_limit
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, public

MINE = BASE + "/applications"
ITEM_RE = r"^[a-z][a-z0-9-]{1,63}$"
PAGE_RE = r"^[a-z][a-z0-9_-]{0,63}$"

router = APIRouter(include_in_schema=False)
router.include_router(pages_auth.router)  # first: /services/login before /services/{item}


# --------------------------------------------------------------------------- helpers


def _lang(request: Request) -> str:
    return _translator(request).lang


def qr_data_uri(text: str) -> str:
    """A PNG data URI of ``text`` as a QR code (the registry's rendering: EC level M, a
    four-module quiet zone), shown inline (the CSP allows ``data:`` images)."""
    return "data:image/png;base64," + base64.b64encode(qr_png(text, scale=5)).decode()


def _app_url(app_id: str, rest: str = "") -> str:
    return f"{MINE}/{app_id}{rest}"


def _page_url(app_id: str, page_id: str, *, back_to_check: bool = False) -> str:
    return _app_url(app_id, f"/pages/{page_id}") + ("?change=1" if back_to_check else "")


def _after_questions(item: ServiceItem, app_id: str) -> str:
    return _app_url(app_id, "/materials" if uploads(item) else "/check")


def _resume_url(app: Any) -> str:
    """Where a draft continues: its first unanswered page, else the check page."""
    if app.current_page:
        return _page_url(app.id, app.current_page)
    return _app_url(app.id, "/check")


def _own_detail(session: Session, principal: Principal, app_id: str) -> Any:
    """The citizen's application (another person's is a 404, as is an unknown id)."""
    detail = service.get_application(session=session, principal=principal, application_id=app_id)
    if detail.applicant_id != principal.id:
        raise NotFound("no such application")
    return detail


def _draft_of(detail: Any, definition: forms.FormDefinition) -> forms.Draft:
    now = utcnow()
    return forms.Draft(
        form_id=definition.id,
        form_version=definition.version,
        reference=detail.reference,
        answers=dict(detail.answers),
        current_page=None,
        created_at=detail.created_at or now,
        updated_at=detail.updated_at or now,
        submitted_at=detail.submitted_at,
    )


# --------------------------------------------------------------------------- catalogue


@router.get(BASE, response_class=HTMLResponse, dependencies=[Depends(public)])
def catalogue_page(request: Request, session: DbSession) -> HTMLResponse:
    cat = default_catalogue()
    lang = _lang(request)
    groups: dict[str, list[ServiceItem]] = {}
    for item in cat.items.values():
        groups.setdefault(item.departments[0] if not item.single_window else "_single", []).append(
            item
        )
    named = [
        (
            cat.departments[key].get(lang) if key in cat.departments else "",
            key,
            items,
        )
        for key, items in groups.items()
    ]
    return render(
        request,
        "eservices/catalogue.html",
        groups=named,
        cat=cat,
        principal=signed_in(request, session),
    )


# --------------------------------------------------------------------------- my applications


@router.get(MINE, response_class=HTMLResponse)
def my_applications(request: Request, session: DbSession, principal: Citizen) -> HTMLResponse:
    apps = service.my_applications(session=session, principal=principal)
    today = local_today()
    rows = [
        {
            "app": a,
            "days_left": days_left(a.due_on, today),
            "href": _resume_url(a) if a.state == "draft" else _app_url(a.id),
        }
        for a in apps
        if a.parent_id is None
    ]
    return render(
        request,
        "eservices/mine.html",
        principal=principal,
        rows=rows,
        saved=request.query_params.get("saved") == "1",
    )


# --------------------------------------------------------------------------- start


@router.get(BASE + "/{item_code}", response_class=HTMLResponse, dependencies=[Depends(public)])
def start_page(request: Request, session: DbSession, item_code: str) -> HTMLResponse:
    if not re.fullmatch(ITEM_RE, item_code):
        raise NotFound("no such service")
    item = item_of(item_code)
    cat = default_catalogue()
    return render(
        request,
        "eservices/start.html",
        principal=signed_in(request, session),
        item=item,
        cat=cat,
        definition=definition_of(item_code),
        uploads=uploads(item),
        max_bytes=mib(ATTACHMENT_MAX_BYTES),
        types_text=types_text,
    )


@router.post(BASE + "/{item_code}/start")
def start(request: Request, session: DbSession, principal: Citizen, item_code: str) -> Response:
    if not re.fullmatch(ITEM_RE, item_code):
        raise NotFound("no such service")
    app = service.start_application(session=session, principal=principal, item_code=item_code)
    return RedirectResponse(_resume_url(app), status_code=303)


# --------------------------------------------------------------------------- question pages


def _render_question(
    request: Request,
    principal: Principal,
    detail: Any,
    definition: forms.FormDefinition,
    page: forms.Page,
    answers: Mapping[str, Any],
    *,
    change: bool,
    errors: Sequence[Any] = (),
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lang = _lang(request)
    messages = dict(error_text(e, lang) for e in errors)
    widgets = [
        widget_for(q, lang, answers.get(q.name), messages.get(q.name)) for q in page.questions
    ]
    summary = [("#" + w.anchor, w.error) for w in widgets if w.error]
    on_page = {w.name for w in widgets}
    summary += [("", m) for f, m in messages.items() if f not in on_page and m]
    pages = visible_pages(definition, answers)
    ids = [p.id for p in pages]
    index = ids.index(page.id) if page.id in ids else 0
    if change:
        back = _app_url(detail.id, "/check")
    elif index > 0:
        back = _page_url(detail.id, ids[index - 1])
    else:
        back = f"{BASE}/{detail.item_code}"
    return render(
        request,
        "eservices/question.html",
        status_code=status_code,
        principal=principal,
        app=detail,
        definition=definition,
        page=page,
        widgets=widgets,
        summary=summary,
        problem=problem,
        number=index + 1,
        total=len(pages),
        back=back,
        action=_page_url(detail.id, page.id, back_to_check=change),
        single=len(widgets) == 1,
    )


@router.get(MINE + "/{app_id}/pages/{page_id}", response_class=HTMLResponse)
def question_page(
    request: Request,
    session: DbSession,
    principal: Citizen,
    app_id: RecordId,
    page_id: str,
    change: Annotated[bool, Query()] = False,
) -> Response:
    detail = _own_detail(session, principal, app_id)
    if detail.state != "draft":
        return RedirectResponse(_app_url(app_id), status_code=303)
    definition = definition_of(detail.item_code)
    if not re.fullmatch(PAGE_RE, page_id):
        raise NotFound("no such page")
    page = definition.page(page_id)
    if page.id not in {p.id for p in visible_pages(definition, detail.answers)}:
        return RedirectResponse(_resume_url(detail), status_code=303)
    return _render_question(
        request, principal, detail, definition, page, detail.answers, change=change
    )


@router.post(MINE + "/{app_id}/pages/{page_id}", response_class=HTMLResponse)
async def save_question_page(
    request: Request,
    session: DbSession,
    principal: Citizen,
    app_id: RecordId,
    page_id: str,
    change: Annotated[bool, Query()] = False,
) -> Response:
    form = await request.form()
    detail = _own_detail(session, principal, app_id)
    if detail.state != "draft":
        return RedirectResponse(_app_url(app_id), status_code=303)
    definition = definition_of(detail.item_code)
    if not re.fullmatch(PAGE_RE, page_id):
        raise NotFound("no such page")
    page = definition.page(page_id)
    values = parse_page(page, form, form.getlist)
    merged = {**detail.answers, **values}
    try:
        saved = service.save_page(
            session=session,
            principal=principal,
            application_id=app_id,
            page_id=page_id,
            answers=values,
        )
    except InvalidInput as exc:
        session.rollback()
        errors = field_errors(exc)
        return _render_question(
            request,
            principal,
            detail,
            definition,
            page,
            merged,
            change=change,
            errors=errors,
            problem=None if errors else exc.detail,
            status_code=422,
        )
    if form.get("action") == "later":
        return RedirectResponse(MINE + "?saved=1", status_code=303)
    if change:
        gap = saved.current_page
        target = _page_url(app_id, gap, back_to_check=True) if gap else _app_url(app_id, "/check")
        return RedirectResponse(target, status_code=303)
    ids = [p.id for p in visible_pages(definition, merged)]
    later = ids[ids.index(page_id) + 1 :] if page_id in ids else []
    target = (
        _page_url(app_id, later[0])
        if later
        else _after_questions(item_of(detail.item_code), app_id)
    )
    return RedirectResponse(target, status_code=303)


# --------------------------------------------------------------------------- materials


def _render_materials(
    request: Request,
    principal: Principal,
    detail: Any,
    *,
    error: tuple[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "eservices/materials.html",
        status_code=status_code,
        principal=principal,
        app=detail,
        materials=material_rows(detail),
        max_bytes=mib(ATTACHMENT_MAX_BYTES),
        error=error,
        cat=default_catalogue(),
    )


@router.get(MINE + "/{app_id}/materials", response_class=HTMLResponse)
def materials_page(
    request: Request, session: DbSession, principal: Citizen, app_id: RecordId
) -> Response:
    detail = _own_detail(session, principal, app_id)
    return _render_materials(request, principal, detail)


register_upload_limit(MINE + r"/[^/]+/materials/[^/]+", ATTACHMENT_MAX_BYTES + 64 * 1024)


@router.post(MINE + "/{app_id}/materials/{material_code}", response_class=HTMLResponse)
def upload_material(
    request: Request,
    session: DbSession,
    principal: Citizen,
    app_id: RecordId,
    material_code: str,
    upload: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """One file for one material; a form sent with no file chosen is told so on the page
    (not with a 422 problem document)."""
    return _store_upload(request, session, principal, app_id, material_code, upload)


def _store_upload(
    request: Request,
    session: Session,
    principal: Principal,
    app_id: str,
    material_code: str,
    upload: StarletteUpload | None,
) -> Response:
    detail = _own_detail(session, principal, app_id)
    if not isinstance(upload, StarletteUpload) or not upload.filename:
        return _render_materials(
            request, principal, detail, error=(material_code, "empty"), status_code=422
        )
    data = upload.file.read(ATTACHMENT_MAX_BYTES + 1)
    try:
        service.add_attachment(
            session=session,
            principal=principal,
            application_id=app_id,
            material_code=material_code,
            filename=upload.filename[-120:],
            content_type=upload.content_type or "application/octet-stream",
            data=data,
        )
    except (InvalidInput, PayloadTooLarge, Conflict) as exc:
        session.rollback()
        kind = {PayloadTooLarge: "too_large", Conflict: "pulled"}.get(type(exc), "invalid")
        return _render_materials(
            request, principal, detail, error=(material_code, kind), status_code=exc.status
        )
    back = (
        _app_url(app_id) + "#supplement"
        if detail.state != "draft"
        else _app_url(app_id, "/materials")
    )
    return RedirectResponse(back, status_code=303)


# --------------------------------------------------------------------------- check, submit


def _render_check(
    request: Request,
    principal: Principal,
    detail: Any,
    *,
    errors: Sequence[Any] = (),
    missing: Sequence[str] = (),
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lang = _lang(request)
    definition = definition_of(detail.item_code)
    names = {m.code: (m.name_zh if lang == "zh" else m.name_en) for m in detail.materials}
    page_of = {q.name: p.id for p in definition.pages for q in p.questions}
    summary = []
    for e in errors:
        name, text = error_text(e, lang)
        href = _page_url(detail.id, page_of[name], back_to_check=True) if name in page_of else ""
        summary.append((href, text))
    return render(
        request,
        "eservices/check.html",
        status_code=status_code,
        principal=principal,
        app=detail,
        definition=definition,
        rows=answer_rows(definition, detail.answers, lang),
        materials=material_rows(detail),
        summary=summary,
        missing=[(code, names.get(code, code)) for code in missing],
        problem=problem,
        idempotency_key=secrets.token_urlsafe(18),
        cat=default_catalogue(),
    )


@router.get(MINE + "/{app_id}/check", response_class=HTMLResponse)
def check_page(
    request: Request, session: DbSession, principal: Citizen, app_id: RecordId
) -> Response:
    detail = _own_detail(session, principal, app_id)
    if detail.state != "draft":
        return RedirectResponse(_app_url(app_id), status_code=303)
    return _render_check(request, principal, detail)


@router.post(MINE + "/{app_id}/submit", response_class=HTMLResponse)
def submit(
    request: Request,
    session: DbSession,
    principal: Citizen,
    app_id: RecordId,
    idempotency_key: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    done = _app_url(app_id, "/confirmation")
    try:
        service.submit(
            session=session,
            principal=principal,
            application_id=app_id,
            idempotency_key=idempotency_key,
        )
    except NotFound:
        raise
    except InvalidInput as exc:
        session.rollback()
        detail = _own_detail(session, principal, app_id)
        if detail.state != "draft":
            return RedirectResponse(done, status_code=303)
        errors = field_errors(exc)
        missing = [str(m) for m in exc.extra.get("missing") or []]
        return _render_check(
            request,
            principal,
            detail,
            errors=errors,
            missing=missing,
            problem=None if errors or missing else exc.detail,
            status_code=422,
        )
    except Conflict:  # sent already (another key: a reloaded page); show what was sent
        session.rollback()
        detail = _own_detail(session, principal, app_id)
        if detail.state == "draft":
            raise
    return RedirectResponse(done, status_code=303)


@router.get(MINE + "/{app_id}/confirmation", response_class=HTMLResponse)
def confirmation(
    request: Request, session: DbSession, principal: Citizen, app_id: RecordId
) -> Response:
    detail = _own_detail(session, principal, app_id)
    if detail.state == "draft":
        return RedirectResponse(_app_url(app_id, "/check"), status_code=303)
    return render(
        request,
        "eservices/confirmation.html",
        principal=principal,
        app=detail,
        days_left=days_left(detail.due_on, local_today()),
    )


@router.get(MINE + "/{app_id}/copy.pdf")
def copy_pdf(session: DbSession, principal: Citizen, app_id: RecordId) -> Response:
    detail = _own_detail(session, principal, app_id)
    definition = definition_of(detail.item_code)
    pdf = forms.copy_pdf(definition, _draft_of(detail, definition))
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{detail.reference}.pdf"'},
    )


@router.get(MINE + "/{app_id}/copy.json")
def copy_json(session: DbSession, principal: Citizen, app_id: RecordId) -> Response:
    detail = _own_detail(session, principal, app_id)
    definition = definition_of(detail.item_code)
    return JSONResponse(
        forms.copy_json(definition, _draft_of(detail, definition)),
        headers={"Content-Disposition": f'attachment; filename="{detail.reference}.json"'},
    )


# --------------------------------------------------------------------------- an application


def certificates_of(app: Any) -> list[tuple[str, str | None]]:
    """(certificate id, type) of an application and of its single-window parts."""
    found: list[tuple[str, str | None]] = []
    if app.certificate_id:
        found.append((app.certificate_id, app.certificate_type))
    for part in app.parts:
        if part.certificate_id and all(part.certificate_id != c for c, _ in found):
            found.append((part.certificate_id, part.certificate_type))
    return found


def _certificate_title(item: ServiceItem, type_: str | None, lang: str) -> str:
    for cert in item.certificates:
        if cert.type == type_:
            return cert.title.get(lang)
    return item.name.get(lang)


@router.get(MINE + "/{app_id}", response_class=HTMLResponse)
def application_page(
    request: Request,
    session: DbSession,
    principal: Citizen,
    app_id: RecordId,
    profile: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    detail = _own_detail(session, principal, app_id)
    if detail.state == "draft":
        return RedirectResponse(_resume_url(detail), status_code=303)
    lang = _lang(request)
    # the purpose the citizen picked; else the registry's default, or the first purpose
    # the certificate has every claim for (a foreigner's permit has no resident ID...)
    chosen = profile if profile in PROFILES else ""
    candidates = [chosen] if chosen else [registry.DEFAULT_PROFILE, *PROFILES]
    item = item_of(detail.item_code)
    held = {c.id: c for c in registry.my_certificates(session=session, principal=principal)}
    certificates = []
    for cert_id, type_ in certificates_of(detail):
        cert = held.get(cert_id)
        shown: dict[str, Any] = {
            "id": cert_id,
            "title": _certificate_title(item, type_, lang),
            "number": cert.number if cert else "",
            "status": cert.status if cert else "unknown",
            "expires_at": cert.expires_at if cert else None,
            "qr": None,
            "text": "",
            "profile": chosen,
            "problem": "profile",
        }
        for name in dict.fromkeys(candidates):
            try:
                text = registry.certificate_qr(
                    session=session, principal=principal, certificate_id=cert_id, profile=name
                )
            except InvalidInput:  # the certificate lacks a claim this purpose needs
                continue
            except Conflict:  # revoked, suspended or expired: nothing to show
                shown["problem"] = "unusable"
                break
            shown.update(qr=qr_data_uri(text), text=text, profile=name, problem=None)
            break
        certificates.append(shown)
    requests_ = [t for t in detail.timeline if t.to_state == "supplement_requested"]
    return render(
        request,
        "eservices/application.html",
        principal=principal,
        app=detail,
        rows=answer_rows(definition_of(detail.item_code), detail.answers, lang),
        materials=material_rows(detail),
        days_left=days_left(detail.due_on, local_today()),
        certificates=certificates,
        profiles=[(p.name, p.title_zh if lang == "zh" else p.title_en) for p in PROFILES.values()],
        profile=chosen or next((c["profile"] for c in certificates if c["profile"]), ""),
        supplement_note=requests_[-1].note if requests_ else None,
        max_bytes=mib(ATTACHMENT_MAX_BYTES),
        cat=default_catalogue(),
    )


@router.post(MINE + "/{app_id}/supplement")
def send_supplement(
    session: DbSession,
    principal: Citizen,
    app_id: RecordId,
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    _own_detail(session, principal, app_id)
    try:
        service.act(
            session=session,
            principal=principal,
            application_id=app_id,
            action="supplement",
            comment=comment.strip() or None,
        )
    except Conflict:  # sent already (a double click) or no longer asked for: show the state
        session.rollback()
    return RedirectResponse(_app_url(app_id), status_code=303)


@router.get(MINE + "/{app_id}/certificates/{cert_id}.pdf")
def certificate_pdf(
    session: DbSession, principal: Citizen, app_id: RecordId, cert_id: RecordId
) -> Response:
    detail = _own_detail(session, principal, app_id)
    if cert_id not in {c for c, _ in certificates_of(detail)}:
        raise NotFound("no such certificate")
    pdf = registry.certificate_pdf(session=session, principal=principal, certificate_id=cert_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{detail.reference}-{cert_id}.pdf"'},
    )


@router.get(MINE + "/{app_id}/attachments/{attachment_id}")
def attachment(
    session: DbSession, principal: Citizen, app_id: RecordId, attachment_id: RecordId
) -> Response:
    _own_detail(session, principal, app_id)
    return attachment_response(
        *service.attachment_bytes(
            session=session,
            principal=principal,
            application_id=app_id,
            attachment_id=attachment_id,
        )
    )


# the staff console's pages travel with this router (one include in the app)
router.include_router(pages_console.router)
