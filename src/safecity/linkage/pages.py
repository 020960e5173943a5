"""Console pages of the person index: the review queue and a person's records and history.

* ``/console/linkage/review`` (``linkage:review``): each pending pair with its two records
  side by side, one row per canonical field, differing fields highlighted; the model's
  probability and per-comparison contributions; link and reject forms, each with a
  required reason.
* ``/console/linkage/persons/{id}`` (``linkage:read``): the records in the reader's scope
  (others counted), and the history with an unmerge form per merge not yet undone.

The pages call :mod:`safecity.linkage.review` and :mod:`safecity.linkage.persons` (which
scope and audit every read) and never touch tables. A refused form shows the page again
with the error's status (nothing was written).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from safecity.console import pages_admin  # noqa: F401  (registers the "when" filter)
from safecity.console.pages import _org_name, _translator, console_require, render
from safecity.linkage import persons, review
from safecity.linkage.comparisons import CANONICAL_FIELDS
from safecity.linkage.permissions import READ, REVIEW
from safecity.platform.api_params import RecordId
from safecity.platform.errors import NotFound, SafeCityError
from safecity.platform.runtime import DbSession
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

BASE = "/console/linkage"
PAGE_SIZE = 20

pages_router = APIRouter(include_in_schema=False)
Reader = Annotated[Principal, Depends(console_require(READ))]
Reviewer = Annotated[Principal, Depends(console_require(REVIEW))]
Reason = Annotated[str, Form(max_length=MAX_NOTE_CHARS)]


def aligned(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per field either record has (canonical fields first, in their order):
    the two values and whether they differ (a value missing on one side differs)."""
    extra = sorted((set(a) | set(b)) - set(CANONICAL_FIELDS))
    rows = []
    for name in (*CANONICAL_FIELDS, *extra):
        left, right = a.get(name), b.get(name)
        if left in (None, "") and right in (None, ""):
            continue
        rows.append({"field": name, "a": left, "b": right, "differs": left != right})
    return rows


def _common(request: Request, session: Session, principal: Principal) -> dict[str, Any]:
    return {
        "principal": principal,
        "active": "linkage",
        "org_name": _org_name(session, principal, _translator(request).lang),
        "csrf": csrf_token_for(request),
    }


def _review_page(
    request: Request, session: Session, principal: Principal, offset: int = 0, **extra: Any
) -> HTMLResponse:
    params = review.QUEUE.parse(limit=PAGE_SIZE, offset=offset, path=BASE + "/review")
    page = review.queue(session=session, principal=principal, params=params)
    return render(
        request,
        "linkage/review.html",
        status_code=extra.pop("status_code", 200),
        page=page,
        pairs=[
            {"pair": p, "rows": aligned(p.record_a.fields, p.record_b.fields)} for p in page.items
        ],
        next_offset=offset + PAGE_SIZE if offset + PAGE_SIZE < page.total else None,
        **_common(request, session, principal),
        **extra,
    )


@pages_router.get(BASE + "/review", response_class=HTMLResponse)
def review_queue(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HTMLResponse:
    return _review_page(request, session, principal, offset)


def _act(
    session: Session, change: Callable[[], object], redirect: str, again: Callable[[int], Response]
) -> Response:
    """Apply one change from a form; on a refusal show the page again with the error."""
    try:
        change()
    except NotFound:
        raise
    except SafeCityError as exc:
        session.rollback()
        return again(exc.status)
    return RedirectResponse(redirect, status_code=303)


@pages_router.post(BASE + "/review/{pair_id}", response_class=HTMLResponse)
def decide_pair(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    pair_id: RecordId,
    decision: Annotated[str, Form(max_length=16)] = "",
    reason: Reason = "",
) -> Response:
    return _act(
        session,
        lambda: review.decide(
            session=session,
            principal=principal,
            pair_id=pair_id,
            decision=decision,
            reason=reason,
        ),
        f"{BASE}/review?decided={decision}",
        lambda status: _review_page(request, session, principal, error=status, status_code=status),
    )


def _person_page(
    request: Request, session: Session, principal: Principal, person_id: str, **extra: Any
) -> HTMLResponse:
    view = persons.person_view(
        session, principal=principal, person_id=person_id, purpose=review.PURPOSE
    )
    return render(
        request,
        "linkage/person.html",
        status_code=extra.pop("status_code", 200),
        view=view,
        fields=[f for f in CANONICAL_FIELDS if any(r.fields.get(f) for r in view.records)],
        merge_kinds=persons.MERGE_KINDS,
        can_review=principal.can(REVIEW),
        **_common(request, session, principal),
        **extra,
    )


@pages_router.get(BASE + "/persons/{person_id}", response_class=HTMLResponse)
def person_page(
    request: Request, session: DbSession, principal: Reader, person_id: RecordId
) -> HTMLResponse:
    return _person_page(request, session, principal, person_id)


@pages_router.post(BASE + "/persons/{person_id}/unmerge/{change_id}", response_class=HTMLResponse)
def unmerge(
    request: Request,
    session: DbSession,
    principal: Reviewer,
    person_id: RecordId,
    change_id: RecordId,
    reason: Reason = "",
) -> Response:
    return _act(
        session,
        lambda: review.unmerge(
            session=session, principal=principal, change_id=change_id, reason=reason
        ),
        f"{BASE}/persons/{person_id}#history",
        lambda status: _person_page(
            request, session, principal, person_id, error=status, status_code=status
        ),
    )
