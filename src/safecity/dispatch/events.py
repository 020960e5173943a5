"""Event types of the dispatch domain (ids and codes only; never requester data), and
the durable consumer that reacts to alerts of objects thrown from height."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from safecity.platform.consumers import register_consumer
from safecity.platform.events import Envelope, register_event_type

SOURCE = "dispatch"
OPENED = "dispatch.work_order.opened"
REPLIED = "dispatch.work_order.replied"
NOTICE_PUBLISHED = "dispatch.notice.published"
ROUTING_CHANGED = "dispatch.routing.changed"

ALERT_RAISED = "alerts.alert.raised"  # consumed (see :mod:`safecity.dispatch.notices`)
CONSUMER = "dispatch.high_altitude"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_CODE = {"type": "string", "minLength": 1, "maxLength": 64}
_OPT_ID = {"type": ["string", "null"], "maxLength": 200}

OPENED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "work_order_id",
        "service_request_id",
        "service_code",
        "department_id",
        "area_org_id",
        "source",
    ],
    "properties": {
        "work_order_id": _ID,
        "service_request_id": _ID,
        "service_code": _CODE,
        "department_id": _ID,
        "area_org_id": _ID,
        "source": _CODE,
        "source_ref": _OPT_ID,
        "h3_cell": {"type": ["string", "null"], "maxLength": 16},
    },
}

REPLIED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["work_order_id", "reply_id", "department_id", "public"],
    "properties": {
        "work_order_id": _ID,
        "reply_id": _ID,
        "department_id": _ID,
        "public": {"type": "boolean"},
    },
}

NOTICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["notice_id", "kind"],
    "properties": {
        "notice_id": _ID,
        "kind": _CODE,
        "alert_id": _OPT_ID,
        "work_order_id": _OPT_ID,
        "org_id": _OPT_ID,
    },
}

ROUTING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["rule_id", "change", "service_code", "department_id"],
    "properties": {
        "rule_id": _ID,
        "change": {"enum": ["created", "updated", "deleted"]},
        "service_code": _CODE,
        "area_org_id": _OPT_ID,
        "department_id": _ID,
    },
}

register_event_type(
    OPENED, OPENED_SCHEMA, description="A work order was opened and routed to a department."
)
register_event_type(
    REPLIED, REPLIED_SCHEMA, description="Department staff replied to a work order."
)
register_event_type(
    NOTICE_PUBLISHED,
    NOTICE_SCHEMA,
    description="A building-level public notice was published (no flat numbers).",
)
register_event_type(
    ROUTING_CHANGED, ROUTING_SCHEMA, description="A routing rule was created, changed or deleted."
)


def _on_alert_raised(session: Session, envelope: Envelope) -> None:
    from safecity.dispatch import notices  # late: notices needs the service and models

    notices.on_alert_raised(session, envelope)


register_consumer(
    CONSUMER,
    _on_alert_raised,
    types=[ALERT_RAISED],
    description="Objects thrown from height: a public notice and a neighbourhood work order.",
)
