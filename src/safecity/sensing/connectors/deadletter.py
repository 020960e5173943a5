"""Dead letters: messages a connector could not accept, kept with the reason.

An invalid message never stops a connector: it becomes a :class:`DeadLetter` and goes to a
:class:`DeadLetterSink`. Every sink counts what it receives in
``safecity_deadletter_total{connector, reason}`` (served at ``/metrics``); ``reason`` is one
of :data:`safecity.sensing.event_types.REASONS`, so the number of series stays bounded.

:class:`MemoryDeadLetterSink` keeps the most recent letters in memory (for tests, the
console and one-process deployments). A durable sink (a table or a bus stream) implements
:meth:`DeadLetterSink._store` the same way. Raw bodies are truncated to
:data:`MAX_RAW_BYTES`; they may hold personal data (a plate) and are not logged.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from safecity.platform import metrics
from safecity.sensing.event_types import Rejection

MAX_RAW_BYTES = 4096

DEADLETTER_TOTAL = metrics.counter(
    "safecity_deadletter_total",
    "Sensor messages rejected by a connector and sent to the dead-letter sink, by reason.",
    ["connector", "reason"],
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    connector: str
    """Connector name (its manifest's ``name``)."""
    reason: str
    detail: str
    source: str
    """Where it came from: an MQTT topic, a NATS subject, an HTTP device group."""
    raw: bytes
    """The message body, truncated to MAX_RAW_BYTES."""
    sensor_id: str | None = None
    type: str | None = None
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_rejection(
        cls, rejection: Rejection, *, connector: str, source: str, raw: bytes
    ) -> DeadLetter:
        return cls(
            connector=connector,
            reason=rejection.reason,
            detail=rejection.detail,
            source=source,
            raw=bytes(raw[:MAX_RAW_BYTES]),
            sensor_id=rejection.sensor_id,
            type=rejection.type,
        )


class DeadLetterSink(ABC):
    """Where rejected messages go. :meth:`put` stores them, then counts them."""

    def put(self, letters: Sequence[DeadLetter]) -> None:
        self._store(letters)
        for letter in letters:
            DEADLETTER_TOTAL.labels(connector=letter.connector, reason=letter.reason).inc()

    @abstractmethod
    def _store(self, letters: Sequence[DeadLetter]) -> None:
        """Keep the letters; raise when they could not be kept (the connector retries)."""


class MemoryDeadLetterSink(DeadLetterSink):
    """Keeps the newest ``capacity`` dead letters in memory (thread-safe)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._letters: deque[DeadLetter] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.total = 0

    def _store(self, letters: Sequence[DeadLetter]) -> None:
        with self._lock:
            self._letters.extend(letters)
            self.total += len(letters)

    def recent(self, limit: int = 100) -> list[DeadLetter]:
        """The newest letters, newest last."""
        with self._lock:
            items = list(self._letters)
        return items[-limit:] if limit else []
