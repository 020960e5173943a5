"""The officer terminal: a phone-sized console page of the station's open alerts, kept live
by Server-Sent Events, with buttons to acknowledge, go on scene and resolve.

``GET /console/terminal`` renders the open alerts in the principal's scope;
``GET /console/terminal/stream`` (``text/event-stream``) then sends every alert of that
scope that changes (raised, repeated, moved, escalated) as an ``alert`` event whose data
is JSON ``{"id", "state", "open", "html"}`` (``html``: the card, rendered here, so the
browser script never builds markup). The stream polls the database (so changes made by
any process reach every terminal), sends a comment every :data:`HEARTBEAT_SECONDS`, and
ends after :data:`STREAM_SECONDS`; the browser's ``EventSource`` reconnects with
``Last-Event-ID`` and gets what changed meanwhile. Buttons are plain forms (CSRF token in
the form) posting to ``/console/terminal/alerts/{id}/{transition}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from safecity.alerts import service
from safecity.alerts.models import Alert
from safecity.alerts.workflow import ACT, OPEN_STATES, READ
from safecity.console import pages_admin  # noqa: F401  (registers the "when" filter)
from safecity.console.i18n import Translator
from safecity.console.pages import _org_name, _translator, console_require, render, templates
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import SafeCityError
from safecity.platform.runtime import DbSession, get_runtime
from safecity.platform.timeline import MAX_NOTE_CHARS
from safecity.security.csrf import csrf_token_for
from safecity.security.rbac import Principal

TERMINAL = "/console/terminal"
STREAM = TERMINAL + "/stream"
STREAM_SECONDS = 60.0
POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0
OVERLAP = timedelta(seconds=5)
"""Changes are re-read this far back: a change stamped before a concurrent transaction
committed is still seen (duplicates are skipped by (id, updated_at))."""
MAX_REPLAY = timedelta(minutes=10)
RETRY_MS = 3000

router = APIRouter(include_in_schema=False)

Reader = Annotated[Principal, Depends(console_require(READ))]
Actor = Annotated[Principal, Depends(console_require(ACT))]
AlertId = RecordId


def _card_context(alert: Alert, principal: Principal) -> dict[str, Any]:
    return {"a": alert, "actions": service.allowed_transitions(alert=alert, principal=principal)}


def render_card(alert: Alert, *, principal: Principal, t: Translator, csrf_token: str) -> str:
    """One alert card (the same markup the page renders), for the stream."""
    template = templates.get_template("alerts/_card.html")
    return template.render(
        t=t, lang=t.lang, csrf_token=csrf_token, **_card_context(alert, principal)
    )


def _page(
    request: Request,
    session: DbSession,
    principal: Principal,
    *,
    error: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    t = _translator(request)
    alerts = service.open_alerts(session=session, principal=principal)
    return render(
        request,
        "alerts/terminal.html",
        status_code=status_code,
        principal=principal,
        org_name=_org_name(session, principal, t.lang),
        cards=[_card_context(a, principal) for a in alerts],
        stream_url=STREAM,
        error=error,
    )


@router.get(TERMINAL, response_class=HTMLResponse)
def terminal(request: Request, session: DbSession, principal: Reader) -> HTMLResponse:
    return _page(request, session, principal)


@router.post(TERMINAL + "/alerts/{alert_id}/{name}", response_class=HTMLResponse)
def terminal_transition(
    request: Request,
    session: DbSession,
    principal: Actor,
    alert_id: AlertId,
    name: TransitionName,
    notes: Annotated[str, Form(max_length=MAX_NOTE_CHARS)] = "",
) -> Response:
    # The form's CSRF token was checked by authentication, before this runs.
    try:  # the workflow writes nothing unless every check passed
        service.transition(
            session=session, principal=principal, alert_id=alert_id, name=name, notes=notes
        )
    except SafeCityError as exc:
        return _page(request, session, principal, error=exc.status, status_code=exc.status)
    return RedirectResponse(f"{TERMINAL}#alert-{alert_id}", status_code=303)


def _replay_from(request: Request, now: datetime) -> datetime:
    raw = request.headers.get("last-event-id", "")
    try:
        since = datetime.fromisoformat(raw) if raw else None
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        return now - OVERLAP
    return max(min(since, now), now - MAX_REPLAY)


def _sse(event: str, data: dict[str, Any], event_id: str) -> str:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event_id}\nevent: {event}\ndata: {body}\n\n"


@router.get(STREAM)
async def terminal_stream(request: Request, principal: Reader) -> StreamingResponse:
    runtime = get_runtime(request)
    t = _translator(request)
    token = csrf_token_for(request)
    cursor = _replay_from(request, utcnow())
    seen: dict[str, datetime] = {}

    def poll() -> list[str]:
        nonlocal cursor
        out: list[str] = []
        with transaction(runtime.sessions) as session:
            changed = service.changed_since(
                session=session, principal=principal, since=cursor - OVERLAP
            )
            for alert in changed:
                if seen.get(alert.id) == alert.updated_at:
                    continue
                seen[alert.id] = alert.updated_at
                is_open = alert.state in OPEN_STATES
                data = {
                    "id": alert.id,
                    "state": alert.state,
                    "open": is_open,
                    "count": alert.count,
                    "html": render_card(alert, principal=principal, t=t, csrf_token=token)
                    if is_open
                    else "",
                }
                out.append(_sse("alert", data, alert.updated_at.isoformat()))
                cursor = max(cursor, alert.updated_at)
        horizon = cursor - 2 * OVERLAP
        for key in [k for k, v in seen.items() if v < horizon]:
            del seen[key]
        return out

    async def events() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        started = last_beat = time.monotonic()
        while time.monotonic() - started < STREAM_SECONDS:
            if await request.is_disconnected():
                return
            for chunk in await anyio.to_thread.run_sync(poll):
                yield chunk
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                last_beat = time.monotonic()
                yield ": ping\n\n"
            await anyio.sleep(POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
