"""One SUMO episode per process through libsumo, with RESCO's protocol.

``run_episode`` starts SUMO on the scenario's net and the episode's demand with
``--time-to-teleport -1`` (unless told otherwise), the seed and ``--scale``, adds the
harness's lane-area detectors, and steps one second at a time. Every ``decision_s`` it
builds an :class:`Observation` per signal that may switch and asks the controller; the
:class:`SignalMachine` runs the yellows and all-reds. The episode is scored from its
tripinfo file (:mod:`safecity.traffic.metrics`).

libsumo holds one simulation per process: run episodes in separate processes (``bench``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers import create
from safecity.traffic.metrics import EpisodeMetrics, read_tripinfo
from safecity.traffic.network import DETECTOR_M, Network, SignalSpec, load_network, write_detectors
from safecity.traffic.observation import KEEP, LaneReading, Observation
from safecity.traffic.safety import SignalMachine, Timing
from safecity.traffic.scenarios import Scenario, check_files
from safecity.traffic.sumo_env import load_libsumo

Protocol = Literal["network", "resco"]


@dataclass(frozen=True)
class EpisodeSpec:
    """What to run. ``protocol``: safety timings from the net's program ("network") or
    RESCO's (3 s yellow, 2 s in arterial4x4, no all-red, green >= step - yellow)."""

    scenario: Scenario
    controller: str
    seed: int
    scale: float = 1.0
    protocol: Protocol = "network"
    time_to_teleport: float = -1.0
    params: Mapping[str, float] = field(default_factory=dict)
    record_states: bool = False
    detector_m: float = DETECTOR_M


@dataclass(frozen=True)
class EpisodeResult:
    scenario: str
    controller: str
    seed: int
    scale: float
    metrics: EpisodeMetrics
    wall_s: float
    states: dict[str, list[str]] | None = None  # per signal, the state shown each second


def _timing(spec: SignalSpec, scenario: Scenario, protocol: Protocol) -> Timing:
    if protocol == "resco":
        return Timing.resco(
            len(spec.green_indices), decision_s=scenario.decision_s, yellow_s=scenario.yellow_s
        )
    return Timing.from_program(spec.program, spec.green_indices)


def _reading(ls: Any, lane: str, spec: SignalSpec) -> LaneReading:
    segs = spec.detectors.get(lane, ())
    count = queue = 0
    occ_len = length = speed_sum = 0.0
    for seg in segs:
        n = int(ls.getLastStepVehicleNumber(seg.id))
        count += n
        queue += int(ls.getLastStepHaltingNumber(seg.id))
        occ_len += float(ls.getLastStepOccupancy(seg.id)) * seg.length
        length += seg.length
        if n:
            speed_sum += float(ls.getLastStepMeanSpeed(seg.id)) * n
    return LaneReading(
        lane=lane,
        count=count,
        queue=queue,
        occupancy=occ_len / length if length else 0.0,
        mean_speed=speed_sum / count if count else -1.0,
        length=length,
        speed_limit=spec.speed.get(lane, 13.89),
    )


def observe(ls: Any, spec: SignalSpec, machine: SignalMachine, now: float) -> Observation:
    """Build a signal's observation from the harness's detectors (``ls``: libsumo.lanearea)."""
    return Observation(
        signal=spec.id,
        time=now,
        green=machine.green,
        time_in_green=machine.time_in_green(now),
        phases=spec.phases,
        incoming={lane: _reading(ls, lane, spec) for lane in spec.incoming},
        outgoing={lane: _reading(ls, lane, spec) for lane in spec.outgoing},
        min_green=machine.timing.min_green[machine.green],
        lost_time=machine.timing.lost_time,
    )


def _start_green(program_state: str, spec: SignalSpec) -> int:
    states = [p.state for p in spec.phases]
    return states.index(program_state) if program_state in states else 0


def sumo_args(spec: EpisodeSpec, detectors: Path, tripinfo: Path) -> list[str]:
    sc = spec.scenario
    return [
        "sumo",
        "-n", str(sc.net),
        "-r", ",".join(str(p) for p in sc.routes_for(spec.seed)),
        "-a", str(detectors),
        "--begin", f"{sc.begin:g}",
        "--end", f"{sc.end:g}",
        "--seed", str(spec.seed),
        "--scale", f"{spec.scale:g}",
        "--time-to-teleport", f"{spec.time_to_teleport:g}",
        "--tripinfo-output", str(tripinfo),
        "--tripinfo-output.write-unfinished", "true",
        "--tripinfo-output.write-undeparted", "true",
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--duration-log.disable", "true",
    ]  # fmt: skip


def run_episode(spec: EpisodeSpec) -> EpisodeResult:
    """Run one episode in this process and score it."""
    if spec.scale <= 0:
        raise InvalidInput(f"demand scale must be > 0, got {spec.scale:g}")
    check_files(spec.scenario)
    started = time.monotonic()
    net = load_network(spec.scenario.net, detector_m=spec.detector_m)
    controllers = {s.id: create(spec.controller, spec.params) for s in net.signals}
    libsumo = load_libsumo()
    with tempfile.TemporaryDirectory(prefix="safecity-sumo-") as tmp:
        detectors = write_detectors(net, Path(tmp) / "detectors.add.xml")
        tripinfo = Path(tmp) / "tripinfo.xml"
        try:
            libsumo.start(sumo_args(spec, detectors, tripinfo))
        except Exception as exc:  # libsumo raises its own TraCIException / FatalTraCIError
            raise InvalidInput(f"SUMO could not load {spec.scenario.name}: {exc}") from exc
        try:
            states = _loop(libsumo, spec, net, controllers)
        finally:
            libsumo.close()
        metrics = read_tripinfo(tripinfo)
    return EpisodeResult(
        spec.scenario.name, spec.controller, spec.seed, spec.scale, metrics,
        round(time.monotonic() - started, 3), states,
    )  # fmt: skip


def _loop(
    libsumo: Any, spec: EpisodeSpec, net: Network, controllers: Mapping[str, Any]
) -> dict[str, list[str]] | None:
    sc = spec.scenario
    tl, ls = libsumo.trafficlight, libsumo.lanearea
    now = float(libsumo.simulation.getTime())
    active = [s for s in net.signals if not controllers[s.id].follows_program]
    machines: dict[str, SignalMachine] = {}
    shown: dict[str, str] = {}
    next_decision: dict[str, float] = {}
    for s in active:
        start = _start_green(str(tl.getRedYellowGreenState(s.id)), s)
        machines[s.id] = SignalMachine(
            [p.state for p in s.phases], _timing(s, sc, spec.protocol), start=start, now=now
        )
        interval = controllers[s.id].decision_s or sc.decision_s
        next_decision[s.id] = now + interval
    record: dict[str, list[str]] | None = (
        {s.id: [] for s in net.signals} if spec.record_states else None
    )
    while now < sc.end - 1e-9:
        for s in active:
            machine, ctrl = machines[s.id], controllers[s.id]
            if now >= next_decision[s.id] - 1e-9:
                next_decision[s.id] += ctrl.decision_s or sc.decision_s
                if machine.can_switch(now):
                    choice = ctrl.decide(observe(ls, s, machine, now))
                    if choice != KEEP:
                        machine.request(choice, now)
            state = machine.state(now)
            if shown.get(s.id) != state:
                tl.setRedYellowGreenState(s.id, state)
                shown[s.id] = state
        if record is not None:
            for s in net.signals:
                record[s.id].append(str(tl.getRedYellowGreenState(s.id)))
        libsumo.simulationStep()
        now = float(libsumo.simulation.getTime())
    return record
