"""Precision and recall of a rule set against the simulator's ground truth (synthetic).

    report = evaluate(runtime, sensors=2000, days=10, seed=1)     # its own fresh database

:func:`simulate` drives a :class:`~safecity.sim.city.CitySim` on a **virtual clock** (one
tick per ``tick`` of simulated time, so ten days take a minute) straight into a
:class:`~safecity.sensing.pipeline.Pipeline` — validation, the rules, ``raise_alert`` and
its dedup, the same code the ingest API runs — and :func:`score` matches the alerts it
wrote with the planted items:

- an alert whose key names a planted **incident** and whose category is one the incident
  should produce is a true positive; every other alert from the rules (a confounder's, or one nobody
  planted) is a false positive;
- an incident with at least one true-positive alert is found; recall = found / incidents.

Alerts are matched by their dedup key ``{rule}:{entity}`` (the shipped rules' default), so
a repeat folded into an open alert counts once. The numbers describe the simulator's
scenarios, not a city: report them labelled "synthetic".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from safecity.alerts.models import Alert
from safecity.platform.runtime import Runtime
from safecity.sensing.pipeline import ALERT_SOURCE, Pipeline
from safecity.sim.city import CitySim, Planted, ensure_sensors

__all__ = ["Score", "evaluate", "score", "simulate"]


@dataclass
class Score:
    incidents: int = 0
    found: int = 0
    confounders: int = 0
    alerts: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_positive_sources: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, dict[str, int]] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.found / self.incidents if self.incidents else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "synthetic": True,
            "incidents": self.incidents,
            "found": self.found,
            "confounders": self.confounders,
            "alerts": self.alerts,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_positive_sources": self.false_positive_sources,
            "precision": self.precision,
            "recall": self.recall,
            "by_category": self.by_category,
            "missed_examples": self.missed[:10],
        }


def _entity(dedup_key: str) -> str:
    return dedup_key.split(":", 1)[1] if ":" in dedup_key else dedup_key


def score(truth: Iterable[Planted], alerts: Iterable[tuple[str, str]]) -> Score:
    """``alerts``: (category, dedup_key) of every alert the rules raised."""
    planted = list(truth)
    by_entity: dict[str, list[Planted]] = {}
    for item in planted:
        by_entity.setdefault(item.entity, []).append(item)
    result = Score(
        incidents=sum(p.kind == "incident" for p in planted),
        confounders=sum(p.kind == "confounder" for p in planted),
    )
    found: set[int] = set()
    sources: Counter[str] = Counter()
    cats: dict[str, Counter[str]] = {}
    for category, dedup_key in alerts:
        result.alerts += 1
        items = by_entity.get(_entity(dedup_key), [])
        hits = [
            p
            for p in items
            if p.kind == "incident"
            and (p.expected_category == category or category in p.also_categories)
        ]
        per = cats.setdefault(category, Counter())
        per["alerts"] += 1
        if hits:
            result.true_positives += 1
            per["true_positives"] += 1
            found.update(id(p) for p in hits)
        else:
            result.false_positives += 1
            per["false_positives"] += 1
            sources[items[0].scenario if items else "unplanted"] += 1
    for p in planted:
        if p.kind != "incident":
            continue
        per = cats.setdefault(p.expected_category or "?", Counter())
        per["incidents"] += 1
        if id(p) in found:
            per["found"] += 1
        else:
            result.missed.append(f"{p.scenario}:{p.entity}")
    result.found = len(found)
    result.false_positive_sources = dict(sources)
    result.by_category = {c: dict(v) for c, v in sorted(cats.items())}
    return result


@dataclass
class SimRun:
    events: int = 0
    accepted: int = 0
    rejected: int = 0
    lost: int = 0
    delayed: int = 0
    planted: list[Planted] = field(default_factory=list)


def simulate(
    runtime: Runtime,
    *,
    sensors: int,
    days: float,
    seed: int = 1,
    batch: int = 50,
    tick: timedelta = timedelta(minutes=5),
    incident_rate: float = 0.3,
    loss_rate: float = 0.0,
    delay_rate: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    end: datetime | None = None,
) -> SimRun:
    """Run the simulator for ``days`` of virtual time ending at ``end`` (default now) into a
    fresh Pipeline."""
    with runtime.sessions.begin() as session:
        fleet = ensure_sensors(session=session, n=sensors, seed=seed)
    end = end or datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    at = [start]
    sim = CitySim(
        fleet,
        seed=seed,
        incident_rate=incident_rate,
        clock=lambda: at[0],
        horizon=end,
        loss_rate=loss_rate,
        delay_rate=delay_rate,
    )
    pipeline = Pipeline(sessions=runtime.sessions, connector="sim")
    run = SimRun()
    ticks = int((end - start) / tick)
    for n in range(ticks):
        messages, planted = sim.tick(batch)
        run.planted.extend(planted)
        result = pipeline.process_raw(messages, source="sim")
        run.events += len(messages)
        run.accepted += result.accepted
        run.rejected += result.rejected
        at[0] += tick
        if progress is not None and (n % 50 == 0 or n == ticks - 1):
            progress(n + 1, ticks)
    rest = sim.drain(end)  # what the last ticks scheduled (a fire alarm 40 s later)
    if rest:
        result = pipeline.process_raw(rest, source="sim")
        run.events += len(rest)
        run.accepted += result.accepted
        run.rejected += result.rejected
    pipeline.advance(end)
    run.lost, run.delayed = sim.lost, sim.delayed
    return run


def evaluate(
    runtime: Runtime,
    *,
    sensors: int = 2000,
    days: float = 10.0,
    seed: int = 1,
    loss_rate: float = 0.0,
    delay_rate: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Simulate, then score every alert the rules wrote (the database should be fresh)."""
    run = simulate(
        runtime,
        sensors=sensors,
        days=days,
        seed=seed,
        loss_rate=loss_rate,
        delay_rate=delay_rate,
        progress=progress,
    )
    with runtime.sessions() as session:
        alerts = session.execute(
            select(Alert.category, Alert.dedup_key).where(Alert.source == ALERT_SOURCE)
        ).all()
    result = score(run.planted, [(a[0], a[1]) for a in alerts]).to_dict()
    scenarios = Counter(p.scenario for p in run.planted)
    return {
        **result,
        "sensors": sensors,
        "days": days,
        "seed": seed,
        "events": run.events,
        "accepted": run.accepted,
        "rejected": run.rejected,
        "loss_rate": loss_rate,
        "delay_rate": delay_rate,
        "planted_messages_lost": run.lost,
        "planted_messages_delayed": run.delayed,
        "scenarios": dict(sorted(scenarios.items())),
    }
