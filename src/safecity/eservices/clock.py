"""The working-day clock of an e-service application, and its pauses.

Due dates are :func:`safecity.eservices.workdays.add_workdays` from the local date of
submission. A supplement requested on day *a* and received on day *b* pauses the clock
for the days ``a+1 .. b`` (the day of the request still counts, the day of receipt does
not), so holidays and make-up workdays inside or after a pause are counted right.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices.access import item_of
from safecity.eservices.models import Application, Pause
from safecity.eservices.schemas import Deadline, PauseRead
from safecity.eservices.workdays import Pause as PauseSpan
from safecity.eservices.workdays import add_workdays, local_date, workdays_between
from safecity.eservices.workflow import FINAL_STATES
from safecity.platform.db import utcnow

SUPPLEMENT_PAUSE = "supplement-requested"


def pause_spans(pauses: Iterable[Pause], today: date) -> list[PauseSpan]:
    """Clock-stopped intervals: ``started_on+1 .. ended_on`` (an open pause: to today)."""
    spans: list[PauseSpan] = []
    for p in pauses:
        first = p.started_on + timedelta(days=1)
        last = p.ended_on if p.ended_on is not None else today
        if last >= first:
            spans.append((first, last))
    return spans


def pauses_of(session: Session, app: Application) -> list[Pause]:
    return list(
        session.scalars(
            select(Pause).where(Pause.application_id == app.id).order_by(Pause.started_on)
        )
    )


def span_workdays(span: PauseSpan) -> int:
    return workdays_between(span[0] - timedelta(days=1), span[1])


def recompute_clock(session: Session, app: Application, today: date) -> None:
    """Due date and paused working days from the submission date and the pauses."""
    if app.submitted_on is None:
        return
    spans = pause_spans(pauses_of(session, app), today)
    app.due_on = add_workdays(app.submitted_on, app.deadline_workdays, spans)
    app.paused_workdays = sum(span_workdays(s) for s in spans)


def elapsed_workdays(session: Session, app: Application, on: date) -> int:
    if app.submitted_on is None or on < app.submitted_on:
        return 0
    spans = pause_spans(pauses_of(session, app), on)
    return workdays_between(app.submitted_on, on, spans)


def deadline(session: Session, app: Application, *, today: date | None = None) -> Deadline:
    """The application's working-day clock as of ``today`` (local date)."""
    item = item_of(app)
    day = today or local_date(utcnow())
    pauses = pauses_of(session, app)
    spans = pause_spans(pauses, day)
    end = day
    if app.decided_at is not None:
        end = local_date(app.decided_at)
    elapsed = elapsed_workdays(session, app, end) if app.submitted_on else 0
    remaining: int | None = None
    overdue = False
    if app.due_on is not None and app.state not in FINAL_STATES and app.decided_at is None:
        if day <= app.due_on:
            remaining = workdays_between(day, app.due_on, spans)
        else:
            overdue = True
            remaining = 0
    return Deadline(
        workdays=app.deadline_workdays,
        basis=item.deadline.basis,
        source=item.deadline.source,
        start_on=app.submitted_on,
        due_on=app.due_on,
        elapsed_workdays=elapsed,
        remaining_workdays=remaining,
        paused=app.paused_since is not None,
        paused_workdays=app.paused_workdays,
        overdue=overdue,
        pauses=[
            PauseRead(
                reason=p.reason,
                started_on=p.started_on,
                ended_on=p.ended_on,
                workdays=sum(span_workdays(s) for s in pause_spans([p], day)),
            )
            for p in pauses
        ],
    )
