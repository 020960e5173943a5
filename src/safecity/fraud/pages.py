"""Console pages of the anti-fraud centre: the dashboard (the four counters, the burden,
charts by week and district), open actions with their outcome form, and block-list
proposals awaiting review.

The pages call the fraud services and never touch tables; plain identifiers appear only
in the review list (audited, for reviewers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from safecity.console import pages_admin  # noqa: F401  (registers the "when" filter)
from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.fraud import actions, dashboard, indicators
from safecity.fraud.models import OUTCOMES
from safecity.fraud.workflow import ACT, READ, REVIEW
from safecity.orgs import service as orgs
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.errors import NotFound, SafeCityError
from safecity.platform.runtime import DbSession
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

BASE = "/console/fraud"
CHART_WIDTH = 240
COUNTERS = ("numbers_shut", "sites_blocked", "money_frozen_cny", "people_dissuaded")

router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(console_require(READ))]
Actor = Annotated[Principal, Depends(console_require(ACT))]
Reviewer = Annotated[Principal, Depends(console_require(REVIEW))]


def bars(values: dict[str, float], width: int = CHART_WIDTH) -> list[dict[str, Any]]:
    """Horizontal bars, longest = ``width``."""
    top = max(values.values(), default=0) or 1
    return [
        {"key": k, "count": v, "width": round(width * v / top), "y": i * 22}
        for i, (k, v) in enumerate(values.items())
    ]


def _district_names(session: Session, request: Request, ids: list[str]) -> dict[str, str]:
    lang = _translator(request).lang
    names = {}
    for org_id in ids:
        try:
            org = orgs.get(session=session, org_id=org_id)
            names[org_id] = org.name_zh if lang == "zh" else org.name_en
        except NotFound:
            names[org_id] = org_id
    return names


def _page(request: Request, session: Session, principal: Principal, **extra: Any) -> HTMLResponse:
    board = dashboard.build(session=session, principal=principal)
    open_actions = actions.list_actions(
        session=session, principal=principal, state="open", limit=50
    )
    proposals = (
        indicators.list_indicators(session=session, principal=principal, state="proposed", limit=50)
        if principal.can(REVIEW)
        else []
    )
    districts = [d for d in board.by_district if d != dashboard.CITY]
    names = _district_names(session, request, districts)
    return render(
        request,
        "fraud/dashboard.html",
        status_code=extra.pop("status_code", 200),
        principal=principal,
        active="fraud",
        org_name=_org_name(session, principal, _translator(request).lang),
        board=board,
        counters=COUNTERS,
        week_bars=bars({w: board.by_week[w]["warnings"] for w in board.weeks}),
        dissuaded_bars=bars({w: board.by_week[w]["people_dissuaded"] for w in board.weeks}),
        district_bars=bars({names.get(d, d): board.by_district[d]["warnings"] for d in districts}),
        chart_width=CHART_WIDTH,
        open_actions=open_actions,
        outcomes=OUTCOMES,
        proposals=proposals,
        can_act=principal.can(ACT),
        can_review=principal.can(REVIEW),
        csrf=csrf_token_for(request),
        **extra,
    )


@router.get(BASE, response_class=HTMLResponse)
def fraud_dashboard(request: Request, session: DbSession, principal: Reader) -> HTMLResponse:
    return _page(request, session, principal)


def _act(
    request: Request,
    session: Session,
    principal: Principal,
    change: Callable[[], object],
    anchor: str,
) -> Response:
    """Apply one change from a form; on a refusal show the page again with the error
    (nothing was written: the service checks everything before it changes anything)."""
    try:
        change()
    except NotFound:
        raise
    except SafeCityError as exc:
        session.rollback()
        return _page(request, session, principal, error=exc.status, status_code=exc.status)
    return RedirectResponse(f"{BASE}#{anchor}", status_code=303)


@router.post(BASE + "/actions/{action_id}/close", response_class=HTMLResponse)
def close_action(
    request: Request,
    session: DbSession,
    principal: Actor,
    action_id: RecordId,
    outcome: Annotated[str, Form(max_length=24)] = "",
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return _act(
        request,
        session,
        principal,
        lambda: actions.close(
            session=session, principal=principal, action_id=action_id, outcome=outcome, notes=notes
        ),
        "actions",
    )


@router.post(BASE + "/indicators/{indicator_id}/{name}", response_class=HTMLResponse)
def review_indicator(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    indicator_id: RecordId,
    name: TransitionName,
    notes: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    return _act(
        request,
        session,
        principal,
        lambda: indicators.transition(
            session=session, principal=principal, indicator_id=indicator_id, name=name, notes=notes
        ),
        "review",
    )
