"""The console's live alert queue and map (officers, supervisors) and the alert page.

``GET /console/alerts`` shows the open alerts in the principal's scope as a table (most
severe first, then the longest waiting) beside a Leaflet map of the same alerts (fed by
``GET /api/alerts.geojson``); filters by severity, category and state are plain query
parameters. ``GET /console/alerts/stream`` keeps both live with Server-Sent Events, polling
:func:`safecity.alerts.service.changed_since` like the officer terminal: each ``alert``
event carries ``{"id", "open", "html", "feature"}`` (``open``: still in the queue under
the filters; ``html``: the table row rendered here; ``feature``: the map point).
``GET /console/alerts/{id}`` is one alert with its timeline and the transitions the
principal may apply (plain forms with the session's CSRF token).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from safecity.alerts import pages as terminal
from safecity.alerts import queue, service
from safecity.alerts.models import SEVERITIES, Alert
from safecity.alerts.workflow import ACT, OPEN_STATES, READ
from safecity.console import pages_admin  # noqa: F401  (registers the "when" filter)
from safecity.console.i18n import Translator
from safecity.console.pages import _org_name, _translator, console_require, render, templates
from safecity.orgs import service as orgs
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import InvalidInput, NotFound, SafeCityError
from safecity.platform.runtime import DbSession, get_runtime
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

QUEUE = "/console/alerts"
STREAM = QUEUE + "/stream"
GEOJSON = "/api/alerts.geojson"

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(READ))]
Actor = Annotated[Principal, Depends(console_require(ACT))]
AlertId = RecordId
Filter = Annotated[str, Query(max_length=64)]


class StationNames:
    """Org names by id for one language, looked up once each."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._names: dict[str, str] = {}

    def __call__(self, session: Session, org_id: str) -> str:
        if org_id not in self._names:
            try:
                org = orgs.get(session=session, org_id=org_id)
                self._names[org_id] = org.name_zh if self.lang == "zh" else org.name_en
            except NotFound:
                self._names[org_id] = org_id
        return self._names[org_id]


def age_minutes(alert: Alert, now: datetime) -> int:
    return max(0, int((now - alert.first_seen_at).total_seconds() // 60))


def render_row(alert: Alert, *, t: Translator, station: str, now: datetime) -> str:
    template = templates.get_template("alerts/_row.html")
    return template.render(t=t, lang=t.lang, a=alert, station=station, age=age_minutes(alert, now))


def _filters(severity: str, category: str, state: str) -> tuple[queue.QueueFilters, bool]:
    try:
        return queue.QueueFilters.parse(severity=severity, category=category, state=state), False
    except InvalidInput:
        return queue.QueueFilters(), True


@router.get(QUEUE, response_class=HTMLResponse)
def alert_queue(
    request: Request,
    session: DbSession,
    principal: Reader,
    severity: Filter = "",
    category: Filter = "",
    state: Filter = "",
) -> HTMLResponse:
    t = _translator(request)
    filters, bad_filter = _filters(severity, category, state)
    alerts = queue.queue(session=session, principal=principal, filters=filters)
    names = StationNames(t.lang)
    now = utcnow()
    rows = [
        {"a": a, "station": names(session, a.org_id), "age": age_minutes(a, now)} for a in alerts
    ]
    qs = filters.query_string()
    return render(
        request,
        "alerts/queue.html",
        principal=principal,
        active="alerts",
        org_name=_org_name(session, principal, t.lang),
        rows=rows,
        filters=filters,
        bad_filter=bad_filter,
        severities=SEVERITIES,
        states=OPEN_STATES,
        categories=queue.open_categories(session=session, principal=principal),
        stream_url=STREAM + (f"?{qs}" if qs else ""),
        geojson_url=GEOJSON + (f"?{qs}" if qs else ""),
        tile_url=get_runtime(request).settings.tile_url,
        map_limit=queue.MAP_LIMIT,
    )


@router.get(STREAM)
async def alert_queue_stream(
    request: Request,
    principal: Reader,
    severity: Filter = "",
    category: Filter = "",
    state: Filter = "",
) -> StreamingResponse:
    runtime = get_runtime(request)
    t = _translator(request)
    filters, _ = _filters(severity, category, state)
    names = StationNames(t.lang)
    cursor = terminal._replay_from(request, utcnow())
    seen: dict[str, datetime] = {}

    def poll() -> list[str]:
        nonlocal cursor
        out: list[str] = []
        now = utcnow()
        with transaction(runtime.sessions) as session:
            changed = service.changed_since(
                session=session, principal=principal, since=cursor - terminal.OVERLAP
            )
            for alert in changed:
                if seen.get(alert.id) == alert.updated_at:
                    continue
                seen[alert.id] = alert.updated_at
                shown = filters.matches(alert)
                station = names(session, alert.org_id)
                data: dict[str, Any] = {
                    "id": alert.id,
                    "open": shown,
                    "severity": alert.severity,
                    "html": render_row(alert, t=t, station=station, now=now) if shown else "",
                    "feature": queue.feature(alert) if shown else None,
                }
                out.append(terminal._sse("alert", data, alert.updated_at.isoformat()))
                cursor = max(cursor, alert.updated_at)
        horizon = cursor - 2 * terminal.OVERLAP
        for key in [k for k, v in seen.items() if v < horizon]:
            del seen[key]
        return out

    async def events() -> AsyncIterator[str]:
        yield f"retry: {terminal.RETRY_MS}\n: connected\n\n"
        started = last_beat = time.monotonic()
        while time.monotonic() - started < terminal.STREAM_SECONDS:
            if await request.is_disconnected():
                return
            for chunk in await anyio.to_thread.run_sync(poll):
                yield chunk
            if time.monotonic() - last_beat >= terminal.HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                yield ": ping\n\n"
            await anyio.sleep(terminal.POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _detail_page(
    request: Request,
    session: Session,
    principal: Principal,
    alert_id: str,
    *,
    error: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    t = _translator(request)
    alert = service.get_alert(session=session, principal=principal, alert_id=alert_id)
    info = service.detail(session=session, principal=principal, alert_id=alert_id)
    return render(
        request,
        "alerts/detail.html",
        status_code=status_code,
        principal=principal,
        active="alerts",
        org_name=_org_name(session, principal, t.lang),
        a=alert,
        station=StationNames(t.lang)(session, alert.org_id),
        timeline=info.timeline,
        actions=info.transitions,
        error=error,
        csrf=csrf_token_for(request),
    )


@router.get(QUEUE + "/{alert_id}", response_class=HTMLResponse)
def alert_page(
    request: Request, session: DbSession, principal: Reader, alert_id: AlertId
) -> HTMLResponse:
    return _detail_page(request, session, principal, alert_id)


@router.post(QUEUE + "/{alert_id}/transitions/{name}", response_class=HTMLResponse)
def alert_page_transition(
    request: Request,
    session: DbSession,
    principal: Actor,
    alert_id: AlertId,
    name: TransitionName,
    notes: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    # The form's CSRF token was checked by authentication, before this runs.
    try:
        service.transition(
            session=session, principal=principal, alert_id=alert_id, name=name, notes=notes
        )
    except NotFound:
        raise
    except SafeCityError as exc:  # the workflow writes nothing unless every check passed
        return _detail_page(
            request, session, principal, alert_id, error=exc.status, status_code=exc.status
        )
    return RedirectResponse(f"{QUEUE}/{alert_id}", status_code=303)
