"""Event types of the accidents domain (ids, codes and times only; never personal data).

State changes are announced by the workflow (``platform.workflow.transitioned``)."""

from __future__ import annotations

from typing import Any

from safecity.platform.events import register_event_type

SOURCE = "accidents"
OPENED = "accidents.case.opened"
FLAGGED = "accidents.case.flagged"
SEALED = "accidents.case.sealed"
INSURER_REPORTED = "accidents.insurer.reported"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_CODE = {"type": "string", "pattern": "^[a-z0-9_]{1,64}$"}

OPENED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["case_id", "org_id"],
    "properties": {"case_id": _ID, "org_id": _ID},
}
FLAGGED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["case_id", "org_id", "codes"],
    "properties": {
        "case_id": _ID,
        "org_id": _ID,
        "codes": {"type": "array", "items": _CODE},
        "alert_id": _ID,
    },
}
SEALED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["case_id", "org_id", "summary_sha256"],
    "properties": {
        "case_id": _ID,
        "org_id": _ID,
        "summary_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}
INSURER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["case_id", "notice_id", "insurer", "event"],
    "properties": {
        "case_id": _ID,
        "notice_id": _ID,
        "insurer": _CODE,
        "event": {"enum": ["acknowledged", "assessed", "paid"]},
    },
}

register_event_type(OPENED, OPENED_SCHEMA, description="A driver opened a minor-accident case.")
register_event_type(
    FLAGGED, FLAGGED_SCHEMA, description="Evidence of an accident case needs an officer's review."
)
register_event_type(
    SEALED, SEALED_SCHEMA, description="Both drivers signed; the platform sealed the summary."
)
register_event_type(
    INSURER_REPORTED,
    INSURER_SCHEMA,
    description="An insurer acknowledged a notice of loss, or reported assessment or payment.",
)
