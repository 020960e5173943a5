"""The sensing pipeline in one process: raw device messages in, alerts out.

    pipeline = Pipeline(sessions=runtime.sessions)           # shipped rules, the registry
    result = pipeline.process_raw(messages, source="http")   # a batch of decoded dicts
    pipeline.handle(validated_events)                        # or: an MQTT connector's Handler

For each batch:

1. every message is validated (:class:`~safecity.sensing.event_types.Validator`) with a
   registry look-up: the sensor must be registered and not retired. Look-ups go to one
   in-memory :class:`SensorCache` (id → lat, lng, H3 cell, station), loaded from the
   registry at start and reloaded on demand (:meth:`SensorCache.refresh`), at most once per
   ``refresh_interval`` when an unknown id shows up, so a sensor registered a moment ago is
   found without a restart and a flood of unknown ids cannot hammer the database. Invalid
   messages and unknown sensors go to the dead-letter sink with their reason; they never
   stop the batch;
2. valid events become the plain dicts the :class:`~safecity.sensing.rules.RuleEngine`
   expects (``id`` is ``sensor_id:seq`` when the device numbers its events, so a resent
   message is recognised as a duplicate; otherwise a fresh id);
3. every :class:`~safecity.sensing.rules.Match` goes to
   :func:`safecity.alerts.service.raise_alert` — dedup and cooldown are its job, so a burst
   becomes one alert with a count — all of a batch in **one** database transaction.

Raw events are never written to the database; only alerts (and their timeline, audit and
outbox rows) are. Matches of severity ``info`` (the on-the-spot red-light warning) are not
officer alerts: they go to the ``on_info`` callbacks only (the roadside-display command).

Failure: if the transaction fails, the batch's matches stay pending and are written first
by the next batch (or :meth:`Pipeline.flush`) — the engine has already counted the events,
so re-sent messages with a ``seq`` are recognised as duplicates and no alert is lost or
doubled. The error propagates (HTTP answers 503; the MQTT connector retries).

The engine is not thread-safe: one lock serialises batches (and their transactions).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from safecity.alerts import service as alerts
from safecity.alerts.models import SEVERITIES
from safecity.platform import metrics
from safecity.platform.db import new_id
from safecity.platform.errors import InvalidInput
from safecity.sensing.connectors.deadletter import (
    DeadLetter,
    DeadLetterSink,
    MemoryDeadLetterSink,
)
from safecity.sensing.event_types import Rejection, ValidatedEvent, Validator
from safecity.sensing.lastseen import LastSeenTracker
from safecity.sensing.models import Sensor
from safecity.sensing.rules import Match, RuleEngine, RuleSet

__all__ = ["BatchResult", "ItemRejection", "Pipeline", "SensorCache", "SensorPlace"]

log = logging.getLogger(__name__)

ALERT_SOURCE: Final = "sensing.rules"
MAX_PENDING: Final = 100_000
MAX_DETAIL_EVENT_IDS: Final = 10
_MIN_COOLDOWN: Final = timedelta(milliseconds=1)
_DEDUP_OK = re.compile(r"^[\x21-\x7e]{1,200}$")

PIPELINE_EVENTS = metrics.counter(
    "safecity_pipeline_events_total",
    "Sensor messages the pipeline took, by outcome (accepted or rejected).",
    ["connector", "outcome"],
)
PIPELINE_MATCHES = metrics.counter(
    "safecity_pipeline_matches_total", "Rule matches emitted by the pipeline's engine.", ["rule"]
)
PIPELINE_ALERTS = metrics.counter(
    "safecity_pipeline_alert_signals_total",
    "Matches written through raise_alert (new alerts and repeats folded into open ones).",
    ["outcome"],
)


# --------------------------------------------------------------------------- registry cache


class SensorPlace(NamedTuple):
    lat: float
    lng: float
    h3: str
    org_id: str | None
    compound: str | None = None
    """The sensor's compound (residential estate): the NATS worker's partition key."""
    group: str | None = None
    """The sensor's device group (an HTTP ingest key may post for one group only)."""


class SensorCache:
    """Registered, non-retired sensors by id, in memory; reloaded on demand."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        refresh_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._places: dict[str, SensorPlace] = {}
        self._loaded_at: float | None = None
        self.loads = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._places)

    def refresh(self) -> int:
        """Reload every sensor from the registry; returns how many are known."""
        with self._sessions() as session:
            rows = session.execute(
                select(
                    Sensor.id,
                    Sensor.lat,
                    Sensor.lng,
                    Sensor.h3_cell,
                    Sensor.org_id,
                    Sensor.compound,
                    Sensor.device_group,
                ).where(Sensor.status != "retired")
            ).all()
        places = {r[0]: SensorPlace(r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}
        with self._lock:
            self._places = places
            self._loaded_at = self._clock()
            self.loads += 1
        return len(places)

    def get(self, sensor_id: str) -> SensorPlace | None:
        """The sensor's place; an unknown id triggers a reload when the last is old enough."""
        if self._loaded_at is None:
            self.refresh()
        place = self._places.get(sensor_id)
        loaded = self._loaded_at
        if place is None and loaded is not None and self._clock() - loaded >= self.refresh_interval:
            self.refresh()
            place = self._places.get(sensor_id)
        return place

    def known(self, sensor_id: str) -> bool:
        return self.get(sensor_id) is not None


class RuleSource(Protocol):
    """Hot reload (e.g. :class:`safecity.sensing.rulesets.RuleWatcher`): asked before each
    batch; reloads the engine when the active rule-set version changed."""

    def poll(self, engine: RuleEngine) -> dict[str, Any] | None: ...


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ItemRejection:
    index: int
    """Position of the message in the batch."""
    reason: str
    detail: str


@dataclass
class BatchResult:
    accepted: int = 0
    rejections: list[ItemRejection] = field(default_factory=list)
    matches: int = 0
    alerts: list[str] = field(default_factory=list)
    """Ids of the alerts written (opened or folded into), in match order, repeated ids kept."""

    @property
    def rejected(self) -> int:
        return len(self.rejections)


# --------------------------------------------------------------------------- pipeline


def _dedup_key(match: Match) -> str:
    if _DEDUP_OK.match(match.dedup_key):
        return match.dedup_key
    digest = hashlib.sha256(match.dedup_key.encode()).hexdigest()[:32]
    return f"{match.rule_id[:64]}:h:{digest}"


def _raw_bytes(item: object) -> bytes:
    try:
        return json.dumps(item, ensure_ascii=False, default=str)[:4096].encode()
    except (TypeError, ValueError, RecursionError):
        return repr(item)[:4096].encode()


class Pipeline:
    """Validation → rule engine → alerts; one per process (see the module docstring)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        ruleset: RuleSet | None = None,
        engine: RuleEngine | None = None,
        cache: SensorCache | None = None,
        dead_letters: DeadLetterSink | None = None,
        validator: Validator | None = None,
        connector: str = "pipeline",
        watcher: RuleSource | None = None,
        last_seen: LastSeenTracker | None = None,
    ) -> None:
        self.sessions = sessions
        self.watcher = watcher
        self.last_seen = LastSeenTracker(sessions) if last_seen is None else last_seen
        if engine is None:
            engine = RuleEngine(ruleset or RuleSet.shipped(), future_tolerance=120.0)
        self.engine = engine
        self.cache = SensorCache(sessions) if cache is None else cache
        self.dead_letters = MemoryDeadLetterSink() if dead_letters is None else dead_letters
        self.validator = (
            Validator(known_sensor=self.cache.known) if validator is None else validator
        )
        self.connector = connector
        self.on_info: list[Callable[[Match], None]] = []
        self.counters: dict[str, int] = {
            "accepted": 0,
            "rejected": 0,
            "matches": 0,
            "alerts": 0,
            "info": 0,
            "alert_errors": 0,
            "no_place": 0,
        }
        self._pending: deque[Match] = deque()
        self._extra: tuple[Callable[[Session], None], bool] | None = None
        self.pending_dropped = 0
        self._lock = threading.Lock()

    # -- entry points --------------------------------------------------------------------

    def process_raw(self, items: Sequence[object], *, source: str = "batch") -> BatchResult:
        """Validate a batch of decoded raw messages, run the rules, write the alerts."""
        result = BatchResult()
        letters: list[DeadLetter] = []
        events: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            checked = self.validator.validate(item)
            if isinstance(checked, Rejection):
                result.rejections.append(ItemRejection(index, checked.reason, checked.detail))
                letters.append(
                    DeadLetter.from_rejection(
                        checked, connector=self.connector, source=source, raw=_raw_bytes(item)
                    )
                )
                continue
            event = self._event(checked)
            if event is not None:
                events.append(event)
        if letters:
            self.dead_letters.put(letters)
        result.accepted = len(events)
        self._count(accepted=len(events), rejected=len(letters))
        self._run(events, result)
        return result

    def handle(self, batch: list[ValidatedEvent]) -> None:
        """A connector :data:`~safecity.sensing.connectors.mqtt.Handler`: events the
        connector already validated (its validator should use :meth:`SensorCache.known`)."""
        events = [e for e in (self._event(v) for v in batch) if e is not None]
        unknown = len(batch) - len(events)
        if unknown:
            self.dead_letters.put(
                [
                    DeadLetter(
                        connector=self.connector,
                        reason="unknown_sensor",
                        detail=f"sensor {v.sensor_id} is not registered",
                        source="handler",
                        raw=b"",
                        sensor_id=v.sensor_id,
                        type=v.type,
                    )
                    for v in batch
                    if self.cache.get(v.sensor_id) is None
                ]
            )
        self._count(accepted=len(events), rejected=unknown)
        self._run(events, BatchResult(accepted=len(events)))

    def process_ready(
        self,
        events: Sequence[dict[str, Any]],
        *,
        also: Callable[[Session], None],
        force: bool = True,
    ) -> BatchResult:
        """Events already validated and enriched elsewhere (the dicts :meth:`_event` makes,
        e.g. from a NATS partition stream) → engine → alerts, and ``also(session)`` (a
        checkpoint) in the **same** transaction. With ``force=False`` a batch without alert
        matches writes nothing and ``also`` is not called (the caller checkpoints later).
        If the transaction fails, no match is kept pending: the caller restores the engine
        from its last checkpoint and replays, so nothing is lost or doubled."""
        result = BatchResult(accepted=len(events))
        self._count(accepted=len(events), rejected=0)
        self._extra = (also, force)
        try:
            self._run(events, result)
        except BaseException:
            self._pending.clear()
            raise
        finally:
            self._extra = None
        return result

    def advance_ready(
        self, watermark: datetime | float | str, *, also: Callable[[Session], None]
    ) -> BatchResult:
        """:meth:`advance` for a checkpointing caller (a NATS partition with no traffic): the
        alerts of absence rules that fall due and ``also(session)`` commit together; when
        none fires nothing is written. On failure nothing is kept pending (the caller
        restores from its checkpoint, as with :meth:`process_ready`)."""
        self._extra = (also, False)
        try:
            return self.advance(watermark)
        except BaseException:
            self._pending.clear()
            raise
        finally:
            self._extra = None

    def advance(self, watermark: datetime | float | str) -> BatchResult:
        """Move the engine's event-time clock (fires due absence rules) and write alerts."""
        result = BatchResult()
        with self._lock:
            self._poll_rules()
            matches = self.engine.advance(watermark)
            self._persist(matches, result)
        return result

    def flush(self) -> BatchResult:
        """Write matches left pending by a failed transaction."""
        result = BatchResult()
        with self._lock:
            self._persist([], result)
        return result

    @property
    def pending(self) -> int:
        return len(self._pending)

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "pending": len(self._pending),
            "pending_dropped": self.pending_dropped,
            "sensors_known": len(self.cache),
            "engine": self.engine.stats(),
            "last_seen": self.last_seen.stats(),
        }

    # -- internals -----------------------------------------------------------------------

    def _count(self, *, accepted: int, rejected: int) -> None:
        self.counters["accepted"] += accepted
        self.counters["rejected"] += rejected
        if accepted:
            PIPELINE_EVENTS.labels(connector=self.connector, outcome="accepted").inc(accepted)
        if rejected:
            PIPELINE_EVENTS.labels(connector=self.connector, outcome="rejected").inc(rejected)

    def _event(self, v: ValidatedEvent) -> dict[str, Any] | None:
        place = self.cache.get(v.sensor_id)
        if place is None:
            return None
        return {
            "id": v.dedup_key or new_id(),
            "type": v.type,
            "sensor_id": v.sensor_id,
            "time": v.time,
            "lat": place.lat,
            "lng": place.lng,
            "h3": place.h3,
            "org_id": place.org_id,
            "payload": v.payload,
        }

    def _run(self, events: Iterable[dict[str, Any]], result: BatchResult) -> None:
        with self._lock:
            self._poll_rules()
            matches: list[Match] = []
            process = self.engine.process
            seen, now = self.last_seen.pending, self.last_seen.now()
            for event in events:
                seen[event["sensor_id"]] = now
                found = process(event)
                if found:
                    matches.extend(found)
            self._persist(matches, result)
            self.last_seen.maybe_flush()

    def _poll_rules(self) -> None:
        """Hot reload before a batch (caller holds the lock); a failure keeps the rules."""
        if self.watcher is not None:
            try:
                self.watcher.poll(self.engine)
            except Exception:
                log.exception("rule reload check failed; the running rules stay")

    def _persist(self, matches: list[Match], result: BatchResult) -> None:
        """Write pending + new matches in one transaction (caller holds the lock)."""
        result.matches += len(matches)
        self.counters["matches"] += len(matches)
        for m in matches:
            PIPELINE_MATCHES.labels(rule=m.rule_id).inc()
        todo: list[Match] = []
        for m in matches:
            if m.severity in SEVERITIES:
                todo.append(m)
            else:
                self.counters["info"] += 1
                for callback in self.on_info:
                    try:
                        callback(m)
                    except Exception:  # a display command must not stop the pipeline
                        log.exception("on_info callback failed for rule %s", m.rule_id)
        self._pending.extend(todo)
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self.pending_dropped += 1
        extra = self._extra
        if not self._pending and (extra is None or not extra[1]):
            return
        batch = list(self._pending)
        written: list[str] = []
        errors = 0
        with self.sessions.begin() as session:
            for m in batch:
                alert_id = self._raise(session, m)
                if alert_id is None:
                    errors += 1
                else:
                    written.append(alert_id)
            if extra is not None:
                extra[0](session)  # e.g. the partition's checkpoint, same transaction
        self._pending.clear()
        self.counters["alerts"] += len(written)
        self.counters["alert_errors"] += errors
        result.alerts.extend(written)
        if written:
            PIPELINE_ALERTS.labels(outcome="written").inc(len(written))
        if errors:
            PIPELINE_ALERTS.labels(outcome="invalid").inc(errors)

    def _raise(self, session: Session, m: Match) -> str | None:
        if m.lat is None or m.lng is None:
            self.counters["no_place"] += 1
            return None
        detail: dict[str, Any] = {
            "rule_id": m.rule_id,
            "rule_kind": m.kind,
            "sensor_id": m.sensor_id,
            "event_type": m.event_type,
            "window_count": m.count,
            "event_ids": list(m.event_ids[-MAX_DETAIL_EVENT_IDS:]),
        }
        try:
            alert = alerts.raise_alert(
                session,
                source=ALERT_SOURCE,
                category=m.category,
                severity=m.severity,
                title_key=m.title,
                lat=m.lat,
                lng=m.lng,
                dedup_key=_dedup_key(m),
                occurred_at=m.time,
                detail=detail,
                org_id=m.org_id,
                cooldown=max(timedelta(seconds=m.cooldown_s), _MIN_COOLDOWN),
            )
        except InvalidInput as exc:  # raise_alert writes nothing then
            log.warning("rule %s: match not raised as an alert: %s", m.rule_id, exc)
            return None
        return alert.id
