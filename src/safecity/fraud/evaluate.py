"""Race the engine against the first transfer on the replay simulator.

:func:`run` feeds a :class:`~safecity.fraud.sim.CitySim` stream through intake
(normalise + pseudonymise) and a :class:`~safecity.fraud.engine.FraudEngine` in event
time and scores the decisions against the simulator's ground truth:

- **warned before the first transfer**: the share of scam episodes whose victim got a
  warning (``warn``, ``callback`` or ``visit``) after the first contact and before the
  first transfer attempt (goal ≥ 90 %);
- **time to warning** from the first contact, p50 / p99, over warned episodes;
- **warnings per true victim** (goal ≤ 3) and **false warnings** per 10,000 citizens a day
  — the burden on people who are not being scammed — split into warnings to people a
  scam number did call or text (targets who did not pay: in life many of them are the
  people dissuaded) and to people no scam touched;
- **stop-pay** requests on victims' first transfers, and on others' transfers;
- block proposals that hit scam numbers or sites, and those that did not;
- the engine's own cost per event (intake excluded), in microseconds.
"""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from safecity.fraud import feeds
from safecity.fraud.engine import Decision, FraudEngine
from safecity.fraud.identifiers import Pseudonymiser
from safecity.fraud.sim import SCRIPTS, CitySim, SimConfig
from safecity.platform.errors import InvalidInput

WARNINGS = frozenset({"warn", "callback", "visit"})
EXPORT_EVERY = 5
EVAL_KEY = b"safecity-fraud-evaluation-key-32b"


@dataclass
class EvalResult:
    config: dict[str, Any]
    events: int
    episodes: int
    warned_before_transfer: float
    warned_at_all: float
    stop_pay_on_first_transfer: float
    time_to_warning_p50_s: float | None
    time_to_warning_p99_s: float | None
    warnings_per_victim: float
    false_warnings_per_10k_citizens_day: float
    false_warnings_to_scam_targets: int
    false_warnings_to_uninvolved: int
    warning_precision: float
    stop_pay_false: int
    block_proposals_true: int
    block_proposals_false: int
    engine_us_per_event: float
    intake_us_per_event: float
    decisions: dict[str, int]
    by_script: dict[str, dict[str, float]] = field(default_factory=dict)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(
    config: SimConfig,
    *,
    engine: FraudEngine | None = None,
    progress: Callable[[int], None] | None = None,
    export_numbers: Path | None = None,
) -> EvalResult:
    """Replay ``config``'s city through intake and ``engine``; with ``export_numbers``,
    also write a labelled CSV of callers' rolling features (every
    :data:`EXPORT_EVERY`-th call of each number; label 1 = a scam operation's number) —
    the training file of ``safecity fraud train --kind number``."""
    sim = CitySim(config)
    pseudonyms = Pseudonymiser(EVAL_KEY)
    engine = engine or FraudEngine()
    decisions: list[Decision] = []
    intake_s = engine_s = 0.0
    events = 0
    rows: list[dict[str, float]] = []
    scam: set[str] | None = None
    for _, feed, raw in sim.records():
        t0 = time.perf_counter()
        record = feeds.parse_record(feed, raw)
        event_type, payload = feeds.to_event(feed, record, pseudonyms)
        t1 = time.perf_counter()
        decisions.extend(engine.process(event_type, payload))
        engine_s += time.perf_counter() - t1
        intake_s += t1 - t0
        events += 1
        if export_numbers is not None and event_type == feeds.CALL_STARTED:
            if scam is None:
                scam = {pseudonyms.of("phone", n) for n in sim.scam_numbers}
            state = engine.numbers.get(payload["caller"])
            if state is not None and len(state.calls_1h) % EXPORT_EVERY == 1:
                when = datetime.fromisoformat(payload["time"]).timestamp()
                rows.append({**state.vector(when), "label": float(payload["caller"] in scam)})
        if progress is not None and events % 10_000 == 0:
            progress(events)
    if export_numbers is not None:
        _write_rows(export_numbers, rows)
    return _score(sim, pseudonyms, decisions, events, engine_s, intake_s, config)


def _write_rows(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        raise InvalidInput("no calls to export")
    columns = list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([int(row[c]) if c == "label" else round(row[c], 4) for c in columns])


def _score(
    sim: CitySim,
    pseudonyms: Pseudonymiser,
    decisions: list[Decision],
    events: int,
    engine_s: float,
    intake_s: float,
    config: SimConfig,
) -> EvalResult:
    episodes = sim.out.episodes
    by_subject: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_subject[d.subject].append(d)
    victims = {pseudonyms.of("phone", e.victim_phone): e for e in episodes}
    victim_accounts = {pseudonyms.of("account", sim.accounts[e.victim_phone]): e for e in episodes}
    before = at_all = stopped = 0
    delays: list[float] = []
    victim_warnings = 0
    per_script: dict[str, Counter[str]] = {s: Counter() for s in SCRIPTS}
    for pseudo, episode in victims.items():
        start, first = episode.first_contact.timestamp(), episode.first_transfer.timestamp()
        warnings = [
            d for d in by_subject.get(pseudo, []) if d.action in WARNINGS and d.at >= start - 1
        ]
        victim_warnings += len(warnings)
        counts = per_script[episode.script]
        counts["episodes"] += 1
        if warnings:
            at_all += 1
            first_warning = min(d.at for d in warnings)
            delays.append(first_warning - start)
            if first_warning < first:
                before += 1
                counts["warned_before"] += 1
        account = pseudonyms.of("account", sim.accounts[episode.victim_phone])
        if any(
            d.action == "stop_pay" and abs(d.at - first) < 1 for d in by_subject.get(account, [])
        ):
            stopped += 1
            counts["stop_pay"] += 1
    targets = {pseudonyms.of("phone", p) for p in sim.scam_targets}
    false_list = [d for d in decisions if d.action in WARNINGS and d.subject not in victims]
    false_warnings = len(false_list)
    to_targets = sum(1 for d in false_list if d.subject in targets)
    scam_numbers = {pseudonyms.of("phone", n) for n in sim.scam_numbers}
    scam_domains = {pseudonyms.of("domain", d) for d in sim.scam_domains}
    proposals = [d for d in decisions if d.action in ("block_number", "block_domain")]
    true_blocks = sum(1 for d in proposals if d.subject in scam_numbers | scam_domains)
    stop_false = sum(
        1 for d in decisions if d.action == "stop_pay" and d.subject not in victim_accounts
    )
    n = max(1, len(episodes))
    days = config.hours / 24
    all_warnings = victim_warnings + false_warnings
    return EvalResult(
        config={
            k: str(v) if not isinstance(v, int | float) else v for k, v in vars(config).items()
        },
        events=events,
        episodes=len(episodes),
        warned_before_transfer=round(before / n, 4),
        warned_at_all=round(at_all / n, 4),
        stop_pay_on_first_transfer=round(stopped / n, 4),
        time_to_warning_p50_s=_pct(delays, 0.5),
        time_to_warning_p99_s=_pct(delays, 0.99),
        warnings_per_victim=round(victim_warnings / max(1, at_all), 3),
        false_warnings_per_10k_citizens_day=round(
            false_warnings / max(1, config.citizens) * 10_000 / days, 2
        ),
        false_warnings_to_scam_targets=to_targets,
        false_warnings_to_uninvolved=false_warnings - to_targets,
        warning_precision=round(victim_warnings / all_warnings, 4) if all_warnings else 0.0,
        stop_pay_false=stop_false,
        block_proposals_true=true_blocks,
        block_proposals_false=len(proposals) - true_blocks,
        engine_us_per_event=round(engine_s / max(1, events) * 1e6, 2),
        intake_us_per_event=round(intake_s / max(1, events) * 1e6, 2),
        decisions=dict(Counter(d.action for d in decisions)),
        by_script={
            s: {
                "episodes": c["episodes"],
                "warned_before": round(c["warned_before"] / c["episodes"], 4)
                if c["episodes"]
                else 0.0,
                "stop_pay": round(c["stop_pay"] / c["episodes"], 4) if c["episodes"] else 0.0,
            }
            for s, c in per_script.items()
        },
    )
