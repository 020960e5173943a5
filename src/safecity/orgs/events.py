"""Events the organisations area publishes (registered at import time)."""

from __future__ import annotations

from typing import Any

from safecity.platform.events import register_event_type

SOURCE = "orgs"

ORG_CREATED = "orgs.org.created"
ORG_UPDATED = "orgs.org.updated"
ORG_DEACTIVATED = "orgs.org.deactivated"
ORG_REACTIVATED = "orgs.org.reactivated"

_ID = {"type": "string", "minLength": 1, "maxLength": 64}
_KIND = {"enum": ["city", "district", "station", "community_office", "department"]}

_BASE: dict[str, Any] = {
    "org_id": _ID,
    "code": {"type": "string", "minLength": 1, "maxLength": 64},
    "kind": _KIND,
    "parent_id": {"type": ["string", "null"], "maxLength": 64},
}

CREATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["org_id", "code", "kind", "parent_id", "name_zh", "name_en", "active"],
    "properties": {
        **_BASE,
        "name_zh": {"type": "string"},
        "name_en": {"type": "string"},
        "active": {"type": "boolean"},
        "has_area": {"type": "boolean"},
        "area_synthetic": {"type": "boolean"},
        "service_codes": {"type": "array", "items": {"type": "string"}},
    },
}

UPDATED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["org_id", "code", "kind", "parent_id", "changed"],
    "properties": {
        **_BASE,
        "changed": {
            "type": "array",
            "minItems": 1,
            "items": {
                "enum": [
                    "name_zh",
                    "name_en",
                    "parent_id",
                    "area",
                    "area_synthetic",
                    "service_codes",
                ]
            },
        },
    },
}

ACTIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["org_id", "code", "kind", "parent_id"],
    "properties": {**_BASE, "cascade_from": {"type": ["string", "null"], "maxLength": 64}},
}

register_event_type(
    ORG_CREATED, CREATED_SCHEMA, description="An organisation was added to the tree."
)
register_event_type(
    ORG_UPDATED,
    UPDATED_SCHEMA,
    description="An organisation's names, parent, area or service codes changed.",
)
register_event_type(
    ORG_DEACTIVATED,
    ACTIVE_SCHEMA,
    description="An organisation was deactivated (no new work is routed to it).",
)
register_event_type(ORG_REACTIVATED, ACTIVE_SCHEMA, description="An organisation is active again.")
