"""Event types of the alerts domain (ids, codes and counts only; never personal data)."""

from __future__ import annotations

from typing import Any

from safecity.alerts.models import SEVERITIES
from safecity.platform.events import register_event_type

SOURCE = "alerts"
RAISED = "alerts.alert.raised"
UPDATED = "alerts.alert.updated"
ESCALATED = "alerts.alert.escalated"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}

RAISED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "alert_id",
        "source",
        "category",
        "severity",
        "title_key",
        "org_id",
        "h3_cell",
        "dedup_key",
        "occurred_at",
        "sla_due_at",
    ],
    "properties": {
        "alert_id": _ID,
        "source": {"type": "string", "minLength": 1, "maxLength": 64},
        "category": {"type": "string", "minLength": 1, "maxLength": 64},
        "severity": {"enum": list(SEVERITIES)},
        "title_key": {"type": "string", "minLength": 1, "maxLength": 120},
        "org_id": _ID,
        "h3_cell": {"type": "string", "maxLength": 16},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 200},
        "occurred_at": {"type": "string", "format": "date-time"},
        "sla_due_at": {"type": "string", "format": "date-time"},
    },
}

UPDATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["alert_id", "org_id", "change", "state", "count", "last_seen_at"],
    "properties": {
        "alert_id": _ID,
        "org_id": _ID,
        "change": {"enum": ["repeat", "transition", "escalation"]},
        "state": {"type": "string", "minLength": 1, "maxLength": 32},
        "transition": {"type": "string", "minLength": 1, "maxLength": 64},
        "count": {"type": "integer", "minimum": 1},
        "last_seen_at": {"type": "string", "format": "date-time"},
    },
}

ESCALATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["alert_id", "org_id", "escalated_to_org_id", "severity", "sla_due_at"],
    "properties": {
        "alert_id": _ID,
        "org_id": _ID,
        "escalated_to_org_id": _ID,
        "severity": {"enum": list(SEVERITIES)},
        "sla_due_at": {"type": "string", "format": "date-time"},
    },
}

register_event_type(
    RAISED, RAISED_SCHEMA, description="A new alert was opened (one per dedup key and window)."
)
register_event_type(
    UPDATED,
    UPDATED_SCHEMA,
    description="An alert changed: its signal repeated (count grew) or its state moved.",
)
register_event_type(
    ESCALATED,
    ESCALATED_SCHEMA,
    description="An alert passed its acknowledgement SLA and went to the district supervisor.",
)
