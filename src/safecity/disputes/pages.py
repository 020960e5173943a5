"""Console pages of the disputes register: the list, the form for a new dispute, one
dispute with its follow-ups and mediation actions, and the station dashboard.

Forms are plain HTML posts with the session's CSRF token (checked during authentication);
the pages call :mod:`safecity.disputes.service` and never touch tables. Times typed into
the forms (``datetime-local``) are read as UTC, like the console shows them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from safecity.console import pages_admin  # noqa: F401  (registers the "when" filter)
from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.disputes import service
from safecity.disputes.api import DISPUTE_LIST
from safecity.disputes.models import CATEGORIES, FOLLOW_UP_KINDS
from safecity.disputes.schemas import DisputeCreate, FollowUpCreate
from safecity.disputes.workflow import READ, STATES, WRITE
from safecity.orgs import service as orgs
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.errors import InvalidInput, NotFound, SafeCityError
from safecity.platform.pagination import ListParams, SortKey
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

BASE = "/console/disputes"
PAGE_SIZE = 50
CHART_WIDTH = 240

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(READ))]
Writer = Annotated[Principal, Depends(console_require(WRITE))]
DisputeId = RecordId
Text = Annotated[str, Form(max_length=MAX_NOTE_CHARS)]
Short = Annotated[str, Form(max_length=300)]


def _local_time(value: str) -> datetime | None:
    """A ``datetime-local`` value (read as UTC); empty → ``None``."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("a date and time is not valid") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _number(value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput("a coordinate is not a number") from None


def _stations(session: Session, principal: Principal) -> list[Any]:
    rows, _ = orgs.list_orgs(session=session, principal=principal, kind="station", limit=500)
    return rows


def _base(request: Request, session: Session, principal: Principal) -> dict[str, Any]:
    lang = _translator(request).lang
    return {
        "principal": principal,
        "active": "disputes",
        "org_name": _org_name(session, principal, lang),
        "categories": CATEGORIES,
        "states": STATES,
        "kinds": FOLLOW_UP_KINDS,
    }


@router.get(BASE, response_class=HTMLResponse)
def dispute_list(
    request: Request,
    session: DbSession,
    principal: Reader,
    state: Annotated[str, Query(max_length=32)] = "",
    category: Annotated[str, Query(max_length=32)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    filters = {
        k: v
        for k, v in (("state", state), ("category", category))
        if v and v in (STATES if k == "state" else CATEGORIES)
    }
    params = ListParams(
        spec=DISPUTE_LIST,
        limit=PAGE_SIZE,
        offset=offset,
        sort=(SortKey("reported_at", descending=True),),
        filters=filters,
        path=BASE,
    )
    page = service.list_disputes(session=session, principal=principal, params=params)
    return render(
        request,
        "disputes/list.html",
        **_base(request, session, principal),
        page=page,
        filters=filters,
    )


def _form(
    request: Request,
    session: Session,
    principal: Principal,
    *,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        "disputes/new.html",
        status_code=status_code,
        **_base(request, session, principal),
        stations=_stations(session, principal),
        values=values or {},
        error=error,
    )


@router.get(BASE + "/new", response_class=HTMLResponse)
def dispute_new(request: Request, session: DbSession, principal: Writer) -> HTMLResponse:
    return _form(request, session, principal)


@router.post(BASE + "/new", response_class=HTMLResponse)
def dispute_create(
    request: Request,
    session: DbSession,
    principal: Writer,
    category: Annotated[str, Form(max_length=32)] = "",
    description: Text = "",
    building: Short = "",
    address: Short = "",
    lat: Annotated[str, Form(max_length=32)] = "",
    lng: Annotated[str, Form(max_length=32)] = "",
    org_id: Annotated[str, Form(max_length=32)] = "",
    party_a_name: Short = "",
    party_a_phone: Short = "",
    party_b_name: Short = "",
    party_b_phone: Short = "",
    next_follow_up_at: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    values = {
        "category": category,
        "description": description,
        "building": building,
        "address": address,
        "lat": lat,
        "lng": lng,
        "org_id": org_id,
        "party_a_name": party_a_name,
        "party_a_phone": party_a_phone,
        "party_b_name": party_b_name,
        "party_b_phone": party_b_phone,
        "next_follow_up_at": next_follow_up_at,
    }
    try:
        data = DisputeCreate(
            category=category,
            description=description,
            building=building,
            address=address,
            lat=_number(lat),
            lng=_number(lng),
            org_id=org_id or None,
            party_a_name=party_a_name,
            party_a_phone=party_a_phone,
            party_b_name=party_b_name,
            party_b_phone=party_b_phone,
            next_follow_up_at=_local_time(next_follow_up_at),
        )
        dispute = service.create_dispute(session=session, principal=principal, data=data)
    except (ValidationError, InvalidInput):
        return _form(request, session, principal, values=values, error="invalid", status_code=422)
    return RedirectResponse(f"{BASE}/{dispute.id}", status_code=303)


def _bars(counts: dict[str, int]) -> list[dict[str, Any]]:
    top = max(counts.values(), default=0) or 1
    return [
        {"key": k, "count": n, "width": round(CHART_WIDTH * n / top), "y": i * 22}
        for i, (k, n) in enumerate(counts.items())
    ]


@router.get(BASE + "/dashboard", response_class=HTMLResponse)
def dispute_dashboard(
    request: Request,
    session: DbSession,
    principal: Reader,
    org_id: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    chosen = org_id or None
    try:
        numbers = service.dashboard(session=session, principal=principal, org_id=chosen)
    except NotFound:
        chosen = None
        numbers = service.dashboard(session=session, principal=principal)
    return render(
        request,
        "disputes/dashboard.html",
        **_base(request, session, principal),
        d=numbers,
        chosen=chosen,
        stations=_stations(session, principal),
        state_bars=_bars(numbers.by_state),
        category_bars=_bars(numbers.by_category),
        chart_width=CHART_WIDTH,
    )


def _detail(
    request: Request,
    session: Session,
    principal: Principal,
    dispute_id: str,
    *,
    error: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    d = service.detail(session=session, principal=principal, dispute_id=dispute_id)
    station = orgs.get(session=session, org_id=d.org_id)
    lang = _translator(request).lang
    return render(
        request,
        "disputes/detail.html",
        status_code=status_code,
        **_base(request, session, principal),
        d=d,
        station=station.name_zh if lang == "zh" else station.name_en,
        can_write=principal.can(WRITE),
        error=error,
        csrf=csrf_token_for(request),
    )


@router.get(BASE + "/{dispute_id}", response_class=HTMLResponse)
def dispute_page(
    request: Request, session: DbSession, principal: Reader, dispute_id: DisputeId
) -> HTMLResponse:
    return _detail(request, session, principal, dispute_id)


@router.post(BASE + "/{dispute_id}/transitions/{name}", response_class=HTMLResponse)
def dispute_transition(
    request: Request,
    session: DbSession,
    principal: Writer,
    dispute_id: DisputeId,
    name: TransitionName,
    notes: Text = "",
) -> Response:
    try:
        service.transition(
            session=session, principal=principal, dispute_id=dispute_id, name=name, notes=notes
        )
    except NotFound:
        raise
    except SafeCityError as exc:  # the workflow writes nothing unless every check passed
        return _detail(
            request, session, principal, dispute_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"{BASE}/{dispute_id}", status_code=303)


@router.post(BASE + "/{dispute_id}/follow-ups", response_class=HTMLResponse)
def dispute_follow_up(
    request: Request,
    session: DbSession,
    principal: Writer,
    dispute_id: DisputeId,
    kind: Annotated[str, Form(max_length=16)] = "",
    notes: Text = "",
    happened_at: Annotated[str, Form(max_length=32)] = "",
    next_due_at: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    try:
        data = FollowUpCreate(
            kind=kind,
            notes=notes,
            happened_at=_local_time(happened_at),
            next_due_at=_local_time(next_due_at),
        )
        service.add_follow_up(
            session=session, principal=principal, dispute_id=dispute_id, data=data
        )
    except NotFound:
        raise
    except ValidationError:
        return _detail(request, session, principal, dispute_id, error=422, status_code=422)
    except SafeCityError as exc:
        return _detail(
            request, session, principal, dispute_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"{BASE}/{dispute_id}#follow-ups", status_code=303)
