"""Event types of the disputes domain (ids, codes and times only; never personal data).

State changes are announced by the workflow (``platform.workflow.transitioned``)."""

from __future__ import annotations

from typing import Any

from safecity.disputes.models import CATEGORIES, FOLLOW_UP_KINDS
from safecity.platform.events import register_event_type

SOURCE = "disputes"
REPORTED = "disputes.dispute.reported"
UPDATED = "disputes.dispute.updated"
FOLLOWED_UP = "disputes.dispute.followed_up"
FOLLOW_UP_OVERDUE = "disputes.follow_up.overdue"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_TIME = {"type": "string", "format": "date-time"}

REPORTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dispute_id", "org_id", "category"],
    "properties": {"dispute_id": _ID, "org_id": _ID, "category": {"enum": list(CATEGORIES)}},
}
UPDATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dispute_id", "org_id", "fields"],
    "properties": {
        "dispute_id": _ID,
        "org_id": _ID,
        "fields": {"type": "array", "items": {"type": "string", "maxLength": 64}},
    },
}
FOLLOWED_UP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dispute_id", "org_id", "follow_up_id", "kind"],
    "properties": {
        "dispute_id": _ID,
        "org_id": _ID,
        "follow_up_id": _ID,
        "kind": {"enum": list(FOLLOW_UP_KINDS)},
        "next_due_at": {"type": ["string", "null"], "format": "date-time"},
    },
}
OVERDUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["dispute_id", "org_id", "due_at", "alert_id"],
    "properties": {"dispute_id": _ID, "org_id": _ID, "due_at": _TIME, "alert_id": _ID},
}

register_event_type(REPORTED, REPORTED_SCHEMA, description="A neighbour dispute was recorded.")
register_event_type(
    UPDATED, UPDATED_SCHEMA, description="A dispute's facts or assignment changed (field names)."
)
register_event_type(
    FOLLOWED_UP, FOLLOWED_UP_SCHEMA, description="A follow-up (visit, call, mediation) was noted."
)
register_event_type(
    FOLLOW_UP_OVERDUE,
    OVERDUE_SCHEMA,
    description="A dispute's follow-up is overdue; a reminder alert went to its station.",
)
