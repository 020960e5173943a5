"""Event types of e-service applications (ids, codes and dates only; never personal data).

State changes are announced by the workflow (``platform.workflow.transitioned``)."""

from __future__ import annotations

from typing import Any

from safecity.platform.events import register_event_type

SOURCE = "eservices"
STARTED = "eservices.application.started"
SUBMITTED = "eservices.application.submitted"
FANNED_OUT = "eservices.application.fanned_out"
SLA = "eservices.application.sla"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_CODE = {"type": "string", "pattern": "^[a-z0-9-]{1,64}$"}
_DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}

STARTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["application_id", "item_code", "org_id"],
    "properties": {"application_id": _ID, "item_code": _CODE, "org_id": _ID},
}
SUBMITTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["application_id", "item_code", "org_id", "due_on"],
    "properties": {
        "application_id": _ID,
        "item_code": _CODE,
        "org_id": _ID,
        "due_on": _DATE,
        "parent_id": _ID,
    },
}
FANNED_OUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["application_id", "children"],
    "properties": {"application_id": _ID, "children": {"type": "array", "items": _ID}},
}
SLA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["application_id", "org_id", "level", "due_on"],
    "properties": {
        "application_id": _ID,
        "org_id": _ID,
        "level": {"enum": ["due_soon", "overdue"]},
        "due_on": _DATE,
        "alert_id": _ID,
    },
}

register_event_type(STARTED, STARTED_SCHEMA, description="A citizen started an application.")
register_event_type(
    SUBMITTED, SUBMITTED_SCHEMA, description="An application was submitted; the clock runs."
)
register_event_type(
    FANNED_OUT,
    FANNED_OUT_SCHEMA,
    description="A single-window application fanned out to one case per department.",
)
register_event_type(
    SLA, SLA_SCHEMA, description="An application is due within a working day, or overdue."
)
