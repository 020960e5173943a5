"""``GET /api/notifications``: the notification outbox's status (admin; no addresses)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from safecity.platform import notify
from safecity.platform.notify import NotificationSummary
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security.rbac import Principal, require

router = APIRouter(tags=["notifications"])


class StatusCountRead(BaseModel):
    status: str
    channel: str
    count: int


class NotifyStatusRead(BaseModel):
    """Counts and recent failures; never an address or a message body."""

    counts: list[StatusCountRead]
    totals: dict[str, int]
    due_now: int
    oldest_due_at: datetime | None
    senders: dict[str, str]
    recent_failures: list[NotificationSummary]


def sender_names(request: Request) -> dict[str, str]:
    settings = get_runtime(request).settings
    return {"email": settings.notify_sender, "sms": settings.notify_sms_sender}


@router.get("/api/notifications", response_model=NotifyStatusRead)
def notifications_status(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, Depends(require("notify:read"))],
    limit: Annotated[int, Query(ge=1, le=100, description="Recent failures to list.")] = 20,
) -> NotifyStatusRead:
    """Notifications by status and channel, what is due, and the latest failures."""
    st = notify.status(session, principal=principal, limit=limit)
    return NotifyStatusRead(
        counts=[
            StatusCountRead(status=c.status, channel=c.channel, count=c.count) for c in st.counts
        ],
        totals={name: st.total(name) for name in notify.STATUSES},
        due_now=st.due_now,
        oldest_due_at=st.oldest_due_at,
        senders=sender_names(request),
        recent_failures=st.recent_failures,
    )
