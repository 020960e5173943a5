"""Console pages of the dispatch domain and the public notices page.

* ``GET /console/dispatch``: the work-order queue of the caller's scope (department staff:
  their department's orders; station officers: orders in their area), filter by status.
* ``GET /console/dispatch/{id}``: one order with replies and timeline; forms to apply a
  transition (notes for close/reject) and to reply (public or internal).
* ``GET /notices``: public notices (building level, no flat numbers), no login.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.dispatch import notices, service
from safecity.dispatch.models import WorkOrder
from safecity.dispatch.services import info
from safecity.dispatch.workflow import CLOSED_STATES, OPEN_STATES, READ, WRITE
from safecity.orgs.models import Org
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.errors import SafeCityError
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.rbac import Principal, public

QUEUE = "/console/dispatch"
NOTICES = "/notices"
QUEUE_LIMIT = 200

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(READ))]
Writer = Annotated[Principal, Depends(console_require(WRITE))]
OrderId = RecordId


def _org_names(session: DbSession, ids: set[str], lang: str) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.scalars(select(Org).where(Org.id.in_(sorted(ids))))
    return {o.id: (o.name_zh if lang == "zh" else o.name_en) for o in rows}


@router.get(QUEUE, response_class=HTMLResponse)
def queue(
    request: Request,
    session: DbSession,
    principal: Reader,
    status: Annotated[Literal["open", "closed", "all"], Query()] = "open",
) -> HTMLResponse:
    t = _translator(request)
    query = service.scoped_query(principal)
    if status == "open":
        query = query.where(WorkOrder.state.in_(OPEN_STATES))
    elif status == "closed":
        query = query.where(WorkOrder.state.in_(CLOSED_STATES))
    orders = list(
        session.scalars(
            query.order_by(WorkOrder.created_at.desc(), WorkOrder.id).limit(QUEUE_LIMIT)
        )
    )
    names = _org_names(
        session, {o.department_id for o in orders} | {o.area_org_id for o in orders}, t.lang
    )
    return render(
        request,
        "dispatch/queue.html",
        principal=principal,
        active="dispatch",
        org_name=_org_name(session, principal, t.lang),
        orders=orders,
        names=names,
        services={o.service_code: info(o.service_code).name(t.lang) for o in orders},
        status=status,
    )


def _detail_page(
    request: Request,
    session: DbSession,
    principal: Principal,
    order_id: str,
    *,
    error: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    t = _translator(request)
    order = service.detail(session=session, principal=principal, order_id=order_id)
    names = _org_names(session, {order.department_id, order.area_org_id}, t.lang)
    context: dict[str, Any] = {
        "o": order,
        "names": names,
        "service_name": info(order.service_code).name(t.lang),
        "can_reply": principal.can(WRITE) and principal.sees_org(order.department_id),
        "error": error,
    }
    return render(
        request,
        "dispatch/order.html",
        status_code=status_code,
        principal=principal,
        active="dispatch",
        org_name=_org_name(session, principal, t.lang),
        **context,
    )


@router.get(QUEUE + "/{order_id}", response_class=HTMLResponse)
def order_page(
    request: Request, session: DbSession, principal: Reader, order_id: OrderId
) -> HTMLResponse:
    return _detail_page(request, session, principal, order_id)


@router.post(QUEUE + "/{order_id}/transitions/{name}", response_class=HTMLResponse)
def order_transition(
    request: Request,
    session: DbSession,
    principal: Writer,
    order_id: OrderId,
    name: TransitionName,
    notes: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    # The form's CSRF token was checked by authentication, before this runs.
    try:
        service.transition(
            session=session, principal=principal, order_id=order_id, name=name, notes=notes
        )
    except SafeCityError as exc:
        return _detail_page(
            request, session, principal, order_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"{QUEUE}/{order_id}", status_code=303)


@router.post(QUEUE + "/{order_id}/replies", response_class=HTMLResponse)
def order_reply(
    request: Request,
    session: DbSession,
    principal: Writer,
    order_id: OrderId,
    body: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
    public_reply: Annotated[str, Form(alias="public")] = "",
) -> Response:
    try:
        service.reply(
            session=session,
            principal=principal,
            order_id=order_id,
            body=body,
            public=public_reply == "on",
        )
    except SafeCityError as exc:
        return _detail_page(
            request, session, principal, order_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"{QUEUE}/{order_id}#replies", status_code=303)


@router.get(NOTICES, response_class=HTMLResponse, dependencies=[Depends(public)])
def notices_page(request: Request, session: DbSession) -> HTMLResponse:
    return render(request, "dispatch/notices.html", notices=notices.list_public(session))
