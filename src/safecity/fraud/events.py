"""Event types the fraud domain publishes (pseudonyms, ids and codes only).

The intake feeds' types (``fraud.call.started`` …) live in :mod:`safecity.fraud.feeds`."""

from __future__ import annotations

from typing import Any

from safecity.fraud.identifiers import KINDS
from safecity.platform.events import register_event_type

SOURCE = "fraud"
INDICATOR_CHANGED = "fraud.indicator.changed"
ACTION_OPENED = "fraud.action.opened"

_PSEUDO = {"type": "string", "pattern": "^[pad]_[0-9a-f]{32}$"}
INDICATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["indicator_id", "kind", "pseudonym", "state"],
    "properties": {
        "indicator_id": {"type": "string", "maxLength": 64},
        "kind": {"enum": list(KINDS)},
        "pseudonym": _PSEUDO,
        "state": {"type": "string", "maxLength": 16},
    },
}
ACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action_id", "action", "subject", "org_id", "score", "reasons", "due_at"],
    "properties": {
        "action_id": {"type": "string", "maxLength": 64},
        "action": {"type": "string", "maxLength": 16},
        "subject": _PSEUDO,
        "org_id": {"type": "string", "maxLength": 64},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reasons": {"type": "array", "items": {"type": "string", "maxLength": 40}},
        "due_at": {"type": "string", "format": "date-time"},
    },
}

register_event_type(
    INDICATOR_CHANGED,
    INDICATOR_SCHEMA,
    description="A block-list entry was added or changed state.",
)
register_event_type(
    ACTION_OPENED,
    ACTION_SCHEMA,
    description="The fraud engine asked for an action (warning, call-back, visit, stop-pay).",
)
