"""Counts through the bus: the ``crowd.count.reported`` event and the ``crowd.counts`` consumer.

A gateway in front of counters, turnstiles, transit gates or an operator's Wi-Fi/phone
aggregates publishes one event per sensor and hour; its payload is one report in the feed
format of :mod:`safecity.crowd.counts` (``docs/crowd-feeds.md``). In-process producers (the
simulator, an importer) call :func:`publish`, which validates the report's shape and writes
the event to the outbox in the caller's transaction.

The ``crowd.counts`` consumer (:mod:`safecity.platform.consumers`: at least once, deduplicated
by event id in the same transaction as its effects) stores each report with
:func:`~safecity.crowd.counts.record_counts`, as the system principal. A replayed event is
skipped by the dedup record; the same report published again under a new event id replaces
the count with the same value (latest wins), so the hour's total does not change.

**Poison events.** The platform redelivers a batch whose ``apply`` raised, so an event that
can never be stored (an unknown or inactive hotspot, a negative or absurd count, a time in
the future) must not raise: it becomes a dead letter in ``sensing_dead_letters`` (connector
``crowd.counts``, the reason and the message, the payload as raw bytes), counted in
``safecity_deadletter_total{connector="crowd.counts"}`` and listed by
``GET /api/sensing/dead-letters`` and ``safecity sensors dead-letters`` — kept, never silently
dropped. :func:`~safecity.crowd.counts.record_counts` validates before it writes, so a
refused event leaves nothing else in the transaction. Any other error (the database) raises
and the batch is delivered again.
"""

from __future__ import annotations

import json
from typing import Any, Final

from sqlalchemy.orm import Session

from safecity.crowd import counts
from safecity.platform import outbox
from safecity.platform.consumers import register_consumer
from safecity.platform.db import utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.events import Envelope, register_event_type
from safecity.security import audit
from safecity.sensing.connectors.deadletter import DEADLETTER_TOTAL
from safecity.sensing.ops_models import MAX_DEAD_RAW, DeadLetterRow

__all__ = ["CONSUMER", "COUNT_REPORTED", "SCHEMA", "apply", "publish"]

COUNT_REPORTED: Final = "crowd.count.reported"
CONSUMER: Final = "crowd.counts"
SOURCE: Final = "crowd.counts"

_TIME = {"type": "string", "format": "date-time", "maxLength": 64}
SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["hotspot", "sensor", "count", "kind"],
    "properties": {
        "hotspot": {"type": "string", "minLength": 1, "maxLength": counts.MAX_CODE},
        "sensor": {"type": "string", "pattern": counts.SENSOR_PATTERN.pattern},
        "hour": _TIME,
        "at": _TIME,
        "count": {"type": "number", "minimum": 0},
        "kind": {"enum": list(counts.KINDS)},
    },
    "oneOf": [{"required": ["hour"]}, {"required": ["at"]}],
}

register_event_type(
    COUNT_REPORTED,
    SCHEMA,
    description="One sensor's aggregated people count for one hour at a crowd hotspot.",
)


def publish(
    session: Session, *, report: dict[str, Any], source: str = SOURCE, org_id: str | None = None
) -> Envelope:
    """Queue one report as a ``crowd.count.reported`` event (outbox, caller's transaction).

    The shape is checked now (:func:`~safecity.crowd.counts.parse_report`); the hotspot is
    checked when the consumer stores it.
    """
    counts.parse_report(report, index=0, now=utcnow())
    return outbox.emit(session, type=COUNT_REPORTED, source=source, payload=report, org_id=org_id)


def _reason(exc: InvalidInput) -> str:
    if "in the future" in exc.detail:
        return "time_in_future"
    if "is before" in exc.detail:
        return "time_too_old"
    if "timestamp" in exc.detail or "UTC" in exc.detail:
        return "bad_time"
    return "invalid_payload"


def apply(session: Session, envelope: Envelope) -> None:
    """Store the event's report; an event that can never be stored becomes a dead letter."""
    try:
        counts.record_counts(session, principal=audit.SYSTEM, reports=[envelope.payload])
    except InvalidInput as exc:
        reason = _reason(exc)
        raw = json.dumps(envelope.payload, default=str).encode()
        sensor = envelope.payload.get("sensor") if isinstance(envelope.payload, dict) else None
        session.add(
            DeadLetterRow(
                connector=CONSUMER,
                reason=reason,
                detail=f"event {envelope.id}: {exc.detail}"[:500],
                source=f"bus:{envelope.source}"[:200],
                sensor_id=sensor[:64] if isinstance(sensor, str) else None,
                type=envelope.type[:64],
                raw=raw[:MAX_DEAD_RAW],
                raw_truncated=len(raw) > MAX_DEAD_RAW,
                received_at=utcnow(),
            )
        )
        DEADLETTER_TOTAL.labels(connector=CONSUMER, reason=reason).inc()


register_consumer(
    CONSUMER,
    apply,
    types=[COUNT_REPORTED],
    batch_size=500,
    description="Crowd counts: stores sensors' hourly counts and recomputes hotspot hours.",
)
