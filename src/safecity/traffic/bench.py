"""Benchmark harness: scenario x controller x seed (x demand scale) in parallel processes.

Each episode runs in its own worker process (libsumo holds one simulation per process;
``maxtasksperchild=1``). Results are aggregated per cell (scenario x controller x scale):
mean and median delay, gridlocked episodes (the issue's rule), trip time, throughput,
never-inserted vehicles and congestion index; written as JSON and a Markdown table.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers import CONTROLLERS, create
from safecity.traffic.metrics import EpisodeMetrics, gridlocked
from safecity.traffic.network import load_network
from safecity.traffic.scenarios import Scenario
from safecity.traffic.sim import EpisodeResult, EpisodeSpec, Protocol, run_episode
from safecity.traffic.sumo_env import SUMO_VERSION


@dataclass(frozen=True)
class Cell:
    scenario: str
    controller: str
    scale: float
    episodes: int
    delay_mean: float
    delay_median: float
    delay_sd: float
    gridlocked: int
    trip_time_mean: float
    throughput_mean: float
    never_inserted_mean: float
    congestion_index_mean: float
    wall_s_mean: float
    seeds: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class BenchReport:
    meta: dict[str, Any]
    cells: list[Cell]
    episodes: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "cells": [asdict(c) for c in self.cells],
            "episodes": self.episodes,
        }


def resolve_controllers(spec: str) -> list[str]:
    names = list(CONTROLLERS) if spec == "all" else [p for p in spec.split(",") if p]
    if not names:
        raise InvalidInput("no controller given")
    for name in names:
        create(name)  # unknown names -> InvalidInput
    return names


def _worker(spec: EpisodeSpec) -> EpisodeResult:
    return run_episode(spec)


def _r(x: float) -> float:
    return round(x, 2)


def aggregate(results: Sequence[EpisodeResult]) -> list[Cell]:
    groups: dict[tuple[str, str, float], list[EpisodeResult]] = {}
    for r in results:
        groups.setdefault((r.scenario, r.controller, r.scale), []).append(r)
    cells = []
    for (scenario, controller, scale), rs in groups.items():
        rs.sort(key=lambda r: r.seed)
        ms: list[EpisodeMetrics] = [r.metrics for r in rs]
        delays = [m.avg_delay for m in ms]
        cells.append(
            Cell(
                scenario=scenario,
                controller=controller,
                scale=scale,
                episodes=len(rs),
                delay_mean=_r(statistics.fmean(delays)),
                delay_median=_r(statistics.median(delays)),
                delay_sd=_r(statistics.stdev(delays)) if len(delays) > 1 else 0.0,
                gridlocked=sum(gridlocked(ms)),
                trip_time_mean=_r(statistics.fmean(m.avg_trip_time for m in ms)),
                throughput_mean=_r(statistics.fmean(m.arrived for m in ms)),
                never_inserted_mean=_r(statistics.fmean(m.never_inserted for m in ms)),
                congestion_index_mean=round(statistics.fmean(m.congestion_index for m in ms), 3),
                wall_s_mean=_r(statistics.fmean(r.wall_s for r in rs)),
                seeds=[r.seed for r in rs],
                delays=[_r(d) for d in delays],
            )
        )
    return cells


def run_bench(
    scenarios: Sequence[Scenario],
    controllers: Sequence[str],
    seeds: Sequence[int],
    *,
    scales: Sequence[float] = (1.0,),
    protocol: Protocol = "network",
    jobs: int = 2,
    params: Mapping[str, Mapping[str, float]] | None = None,
    on_done: Callable[[EpisodeResult], None] | None = None,
) -> BenchReport:
    """Run every episode (``jobs`` worker processes) and aggregate."""
    if jobs < 1:
        raise InvalidInput("--jobs must be >= 1")
    if not seeds:
        raise InvalidInput("no seeds to run")
    if any(s <= 0 for s in scales):
        raise InvalidInput("demand scales must be > 0")
    for sc in scenarios:
        load_network(sc.net)  # fail early: corrupt net, no signals
    specs = [
        EpisodeSpec(sc, c, seed, scale, protocol, params=dict((params or {}).get(c, {})))
        for sc in scenarios
        for c in controllers
        for scale in scales
        for seed in seeds
    ]
    for c in controllers:
        create(c, (params or {}).get(c))  # impossible settings -> InvalidInput before forking
    results: list[EpisodeResult] = []
    ctx = mp.get_context("fork")
    with ctx.Pool(processes=jobs, maxtasksperchild=1) as pool:
        for result in pool.imap_unordered(_worker, specs):
            results.append(result)
            if on_done is not None:
                on_done(result)
    meta = {
        "sumo_version": SUMO_VERSION,
        "protocol": protocol,
        "time_to_teleport": -1,
        "seeds": list(seeds),
        "scales": list(scales),
        "jobs": jobs,
        "params": {c: create(c, (params or {}).get(c)).params for c in controllers},
    }
    episodes = [
        {
            "scenario": r.scenario,
            "controller": r.controller,
            "seed": r.seed,
            "scale": r.scale,
            "wall_s": r.wall_s,
            **r.metrics.as_dict(),
        }
        for r in sorted(results, key=lambda r: (r.scenario, r.controller, r.scale, r.seed))
    ]
    return BenchReport(meta, aggregate(results), episodes)


def markdown(report: BenchReport) -> str:
    """The table: one row per scenario x controller x scale."""
    lines = [
        f"SUMO {report.meta['sumo_version']}, protocol {report.meta['protocol']}, "
        f"teleporting off, seeds {report.meta['seeds']}. Delay = tripinfo timeLoss + "
        "departDelay incl. never-inserted vehicles (s/veh).",
        "",
        "| scenario | controller | scale | n | delay mean | delay median | gridlocked "
        "| trip time | throughput | never inserted | congestion index |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(report.cells, key=lambda c: (c.scenario, c.scale, c.controller)):
        lines.append(
            f"| {c.scenario} | {c.controller} | {c.scale:g} | {c.episodes} | {c.delay_mean:.2f} "
            f"| {c.delay_median:.2f} | {c.gridlocked} | {c.trip_time_mean:.2f} "
            f"| {c.throughput_mean:.1f} | {c.never_inserted_mean:.1f} "
            f"| {c.congestion_index_mean:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: BenchReport, out: Path) -> tuple[Path, Path]:
    """Write ``out`` (JSON) and the same name with ``.md``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.as_dict(), indent=1) + "\n", encoding="utf-8")
    md = out.with_suffix(".md")
    md.write_text(markdown(report), encoding="utf-8")
    return out, md
