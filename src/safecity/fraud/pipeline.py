"""Feeds → bus → engine → actions.

Intake (:func:`ingest`) validates a batch of feed records, turns each into its
pseudonymised event and writes them all to the outbox in the caller's transaction —
all or nothing: one bad record refuses the batch with its index, and nothing of it is
published. Identifiers a case confirmed also go on the block list at once. The relay
puts the events on the bus; the ``fraud.engine`` consumer applies them, in order, to
this process's :class:`~safecity.fraud.engine.FraudEngine` and records its decisions as
actions in the consumer's transaction.

The engine's rolling state lives in memory (like the sensing pipeline's windows).
After a restart it starts empty and loads the active block list; the windows refill
within the hour they span. Decisions of a batch whose transaction rolled back are kept
by event id, so the redelivered batch records them (the engine itself skips the events
it has already applied).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from safecity.fraud import actions, feeds, indicators, text_rules
from safecity.fraud.engine import Decision, FraudEngine
from safecity.fraud.events import INDICATOR_CHANGED
from safecity.fraud.feeds import TextScorer
from safecity.fraud.ml.store import number_scorer, text_scorer
from safecity.fraud.models import Indicator
from safecity.platform import outbox
from safecity.platform.consumers import register_consumer
from safecity.platform.errors import Conflict, InvalidInput, PayloadTooLarge
from safecity.platform.events import Envelope
from safecity.platform.runtime import settings_for
from safecity.security import audit

CONSUMER = "fraud.engine"
MAX_BATCH = 5000
_REMEMBERED = 20_000


def ingest(
    *,
    session: Session,
    feed: str,
    records: Sequence[dict[str, Any]],
    text_scorer: TextScorer | None = None,
) -> int:
    """Validate ``records`` of ``feed`` and queue their events; how many were queued."""
    if not isinstance(records, list | tuple):
        raise InvalidInput("records must be a list")
    if len(records) > MAX_BATCH:
        raise PayloadTooLarge(f"at most {MAX_BATCH} records per batch")
    pseudonyms = indicators.pseudonymiser(session)
    events: list[tuple[str, dict[str, Any]]] = []
    for index, data in enumerate(records):
        if not isinstance(data, dict):
            raise InvalidInput(f"record {index}: must be an object")
        try:
            record = feeds.parse_record(feed, data)
            events.append(feeds.to_event(feed, record, pseudonyms, text_scorer=text_scorer))
        except InvalidInput as exc:
            raise InvalidInput(f"record {index}: {exc.detail}", index=index) from None
    for event_type, payload in events:
        outbox.emit(session, type=event_type, source=feeds.SOURCE, payload=payload)
    if feed == "confirmed":
        for data in records:
            _list_confirmed(session, feeds.ConfirmedIdentifier.model_validate(data))
    return len(events)


def _list_confirmed(session: Session, record: feeds.ConfirmedIdentifier) -> None:
    """A case confirmed it: on the block list at once (the case is the evidence), or back
    on it if it had expired or been removed."""
    evidence = f"case {record.case_id}"
    try:
        indicators.add(
            session=session,
            principal=audit.SYSTEM,
            kind=record.kind,
            value=record.value,
            source="case",
            evidence=evidence,
            active=True,
        )
    except Conflict as exc:
        entry = session.get(Indicator, exc.extra["indicator_id"])
        if entry is not None and entry.state in ("expired", "removed"):
            indicators.transition(
                session=session,
                principal=audit.SYSTEM,
                indicator_id=entry.id,
                name="reinstate",
                notes=f"confirmed again by {evidence}",
            )
        elif entry is not None and entry.state == "proposed":
            indicators.transition(
                session=session,
                principal=audit.SYSTEM,
                indicator_id=entry.id,
                name="approve",
            )


_TEXT_SCORERS: dict[str, TextScorer] = {}


def configured_text_scorer(session: Session) -> TextScorer:
    """The SMS-text scorer intake uses: the configured model, else the phrase rules."""
    path = settings_for(session).fraud_text_model
    if path is None:
        return text_rules.score_text
    key = str(path)
    if key not in _TEXT_SCORERS:
        _TEXT_SCORERS[key] = text_scorer(path)
    return _TEXT_SCORERS[key]


class EngineHost:
    """The process's engine, loaded with the block list on first use."""

    def __init__(self) -> None:
        self.engine = FraudEngine()
        self.loaded = False
        self.lock = threading.Lock()
        self._decided: OrderedDict[str, list[Decision]] = OrderedDict()

    def reset(self) -> None:
        with self.lock:
            self.engine = FraudEngine()
            self.loaded = False
            self._decided.clear()

    def apply(self, session: Session, envelope: Envelope) -> None:
        with self.lock:
            if not self.loaded:
                self.engine.list_identifiers(indicators.active_pseudonyms(session=session))
                model = settings_for(session).fraud_number_model
                if model is not None:
                    self.engine.model = number_scorer(model)
                self.loaded = True
            if envelope.type == INDICATOR_CHANGED:
                self._indicator_changed(envelope.payload)
                return
            decisions = self._decided.get(envelope.id)
            if decisions is None:
                decisions = self.engine.process(envelope.type, envelope.payload)
                self._decided[envelope.id] = decisions
                if len(self._decided) > _REMEMBERED:
                    self._decided.popitem(last=False)
        if decisions:
            actions.record(session, decisions)

    def _indicator_changed(self, payload: dict[str, Any]) -> None:
        if payload["state"] == "active":
            self.engine.list_identifiers([(payload["pseudonym"], 1.0)])
        else:
            self.engine.unlist(payload["pseudonym"])


HOST = EngineHost()


def _apply(session: Session, envelope: Envelope) -> None:
    HOST.apply(session, envelope)


register_consumer(
    CONSUMER,
    _apply,
    types=[*feeds.EVENT_TYPES, INDICATOR_CHANGED],
    batch_size=500,
    description="Anti-fraud engine: scores calls, SMS, URLs and transfers; opens actions.",
)
