"""Event envelope and the registry of event types, each with a JSON schema.

Every event SafeCity publishes has one envelope: id, type, source, time, org, schema
version and payload. A domain registers its types at import time with
:func:`register_event_type`; :func:`validate` checks a payload against its schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastjsonschema
import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import InvalidInput


class Envelope(BaseModel):
    """The one envelope around every event (CloudEvents-like field names)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=new_id, description="Unique event id (dedup key).")
    type: str = Field(description="Event type, e.g. 'orgs.org.created'.")
    source: str = Field(description="Who produced it: a domain, a connector, a device id.")
    time: datetime = Field(default_factory=utcnow)
    org_id: str | None = Field(default=None, description="Organisation the event belongs to.")
    schema_version: int = 1
    payload: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    schema: dict[str, Any]
    description: str = ""


_REGISTRY: dict[tuple[str, int], EventType] = {}
_COMPILED: dict[tuple[str, int], Any] = {}


def register_event_type(
    name: str, schema: dict[str, Any], *, version: int = 1, description: str = ""
) -> EventType:
    jsonschema.Draft202012Validator.check_schema(schema)
    event_type = EventType(name=name, version=version, schema=schema, description=description)
    existing = _REGISTRY.get((name, version))
    if existing is not None and existing != event_type:
        raise ValueError(f"event type {name} v{version} registered twice with different schemas")
    _REGISTRY[(name, version)] = event_type
    _COMPILED.pop((name, version), None)
    return event_type


def event_types() -> list[EventType]:
    return sorted(_REGISTRY.values(), key=lambda t: (t.name, t.version))


def get_event_type(name: str, version: int = 1) -> EventType:
    try:
        return _REGISTRY[(name, version)]
    except KeyError:
        raise InvalidInput(f"unknown event type {name!r} v{version}") from None


def _compiled(event_type: EventType) -> Any:
    """The type's schema compiled to Python (``fastjsonschema``; formats not asserted,
    as with ``jsonschema``'s defaults): a valid payload costs microseconds."""
    key = (event_type.name, event_type.version)
    check = _COMPILED.get(key)
    if check is None:
        check = _COMPILED[key] = fastjsonschema.compile(
            event_type.schema, use_default=False, use_formats=False
        )
    return check


def validate(name: str, payload: dict[str, Any], version: int = 1) -> None:
    """Raise :class:`InvalidInput` when ``payload`` does not match the type's schema."""
    event_type = get_event_type(name, version)
    try:
        _compiled(event_type)(payload)
        return
    except fastjsonschema.JsonSchemaException:
        pass  # explain it with jsonschema's messages (the slow path, for bad input only)
    validator = jsonschema.Draft202012Validator(event_type.schema)
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(root)"
        raise InvalidInput(f"{name} payload invalid at {where}: {first.message}")
    raise InvalidInput(f"{name} payload invalid")
