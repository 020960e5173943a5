"""Event types of e-service applications and e-certificates (ids, codes and dates only;
never personal data — no claims, no free-text reasons).

Application state changes are announced by the workflow
(``platform.workflow.transitioned``); certificate status changes by the registry:
``eservices.certificate.revoked`` / ``suspended`` / ``reinstated`` / ``reissued``."""

from __future__ import annotations

from typing import Any

from safecity.platform.events import register_event_type

SOURCE = "eservices"
STARTED = "eservices.application.started"
SUBMITTED = "eservices.application.submitted"
FANNED_OUT = "eservices.application.fanned_out"
SLA = "eservices.application.sla"
CERT_REVOKED = "eservices.certificate.revoked"
CERT_SUSPENDED = "eservices.certificate.suspended"
CERT_REINSTATED = "eservices.certificate.reinstated"
CERT_REISSUED = "eservices.certificate.reissued"

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

_TIME = {"type": "string", "format": "date-time", "maxLength": 40}
_REASON_CODE = {
    "enum": [
        "unspecified",
        "superseded",
        "data_corrected",
        "holder_request",
        "issued_in_error",
        "withdrawn_by_authority",
    ]
}
_CERT_PROPS: dict[str, Any] = {
    "certificate_id": _ID,
    "item_code": _CODE,
    "certificate_type": _CODE,
    "org_id": {"type": ["string", "null"], "maxLength": 64},
    "generation": {"type": "integer", "minimum": 1},
    "status_list": {"type": "integer", "minimum": 1},
    "list_version": {"type": "integer", "minimum": 1},
    "at": _TIME,
}
_CERT_REQUIRED = ["certificate_id", "item_code", "certificate_type", "org_id", "generation", "at"]


def _cert_schema(extra: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": _CERT_REQUIRED + required,
        "properties": {**_CERT_PROPS, **extra},
    }


CERT_REVOKED_SCHEMA = _cert_schema({"reason_code": _REASON_CODE}, ["reason_code"])
CERT_SUSPENDED_SCHEMA = _cert_schema({}, [])
CERT_REINSTATED_SCHEMA = _cert_schema({}, [])
CERT_REISSUED_SCHEMA = _cert_schema({"replaces_id": _ID}, ["replaces_id"])

register_event_type(
    CERT_REVOKED,
    CERT_REVOKED_SCHEMA,
    description="Every copy of an e-certificate was revoked (with the published reason code).",
)
register_event_type(
    CERT_SUSPENDED,
    CERT_SUSPENDED_SCHEMA,
    description="Every copy of an e-certificate was suspended.",
)
register_event_type(
    CERT_REINSTATED,
    CERT_REINSTATED_SCHEMA,
    description="A suspended e-certificate was reinstated.",
)
register_event_type(
    CERT_REISSUED,
    CERT_REISSUED_SCHEMA,
    description="An e-certificate was reissued as its next generation (the old one revoked).",
)
