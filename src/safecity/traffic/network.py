"""A SUMO network's signals, read with sumolib, and the detectors the harness adds.

For each traffic light: its first static program, the green phases (RESCO's rule), the
movements each green serves, and lane-area detectors: on every incoming lane, segments
covering up to ``DETECTOR_M`` metres before the stop line, following the road back across
short lanes through unsignalised nodes (the 0.9 m stub lanes of the Ingolstadt nets would
otherwise hide their queue); on every outgoing lane, the last ``DETECTOR_M`` metres before its
end, where its queue forms (the downstream queue, before the next stop line).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from safecity.platform.errors import InvalidInput
from safecity.traffic.observation import GreenPhase, Movement
from safecity.traffic.safety import is_green_phase
from safecity.traffic.sumo_env import sumo_home

DETECTOR_M = 100.0
MIN_SEGMENT_M = 0.1
MAX_UPSTREAM_HOPS = 4


@dataclass(frozen=True, slots=True)
class Segment:
    """A lane-area detector: ``lane`` from ``start`` to ``end`` metres."""

    id: str
    lane: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """A signal as the harness runs it."""

    id: str
    program: tuple[tuple[str, float, float], ...]  # (state, duration, minDur)
    green_indices: tuple[int, ...]
    phases: tuple[GreenPhase, ...]
    incoming: tuple[str, ...]
    outgoing: tuple[str, ...]
    speed: dict[str, float]
    detectors: dict[str, tuple[Segment, ...]]  # lane -> segments


@dataclass(frozen=True, slots=True)
class Network:
    path: Path
    signals: tuple[SignalSpec, ...]

    @property
    def segments(self) -> list[Segment]:
        seen: dict[str, Segment] = {}
        for signal in self.signals:
            for segs in signal.detectors.values():
                for seg in segs:
                    seen[seg.id] = seg
        return list(seen.values())


def _read(path: Path) -> Any:
    sumo_home()
    import sumolib  # type: ignore[import-untyped]

    if not path.is_file():
        raise InvalidInput(f"network file not found: {path}")
    try:
        return sumolib.net.readNet(str(path), withPrograms=True)
    except (ET.ParseError, Exception) as exc:  # sumolib raises SAX errors and others
        raise InvalidInput(f"network file {path} could not be read: {exc}") from exc


def _drives(lane: Any) -> bool:
    return bool(lane.allows("passenger"))


class _Segments:
    def __init__(self) -> None:
        self.by_key: dict[tuple[str, float, float], Segment] = {}

    def get(self, lane: str, start: float, end: float) -> Segment:
        key = (lane, round(start, 2), round(end, 2))
        if key not in self.by_key:
            self.by_key[key] = Segment(f"sc{len(self.by_key)}", lane, key[1], key[2])
        return self.by_key[key]


def _upstream(lane: Any, budget: float, segs: _Segments, hops: int, out: list[Segment]) -> None:
    length = float(lane.getLength())
    cover = min(length, budget)
    if cover >= MIN_SEGMENT_M:
        out.append(segs.get(lane.getID(), length - cover, length))
    rest = budget - cover
    if rest <= 1.0 or hops >= MAX_UPSTREAM_HOPS:
        return
    node = lane.getEdge().getFromNode()
    if node.getType() in (
        "traffic_light",
        "traffic_light_right_on_red",
        "traffic_light_unregulated",
    ):
        return
    for prev in lane.getIncoming():
        if _drives(prev) and prev.getEdge().getFunction() != "internal":
            _upstream(prev, rest, segs, hops + 1, out)


def load_network(path: Path, *, detector_m: float = DETECTOR_M) -> Network:
    """Read ``path``; InvalidInput for a missing/corrupt file or a net without signals."""
    if not 0 < detector_m <= DETECTOR_M:
        raise InvalidInput(f"detector length must be in (0, {DETECTOR_M:g}] m")
    net = _read(path)
    segs = _Segments()
    signals: list[SignalSpec] = []
    for tls in net.getTrafficLights():
        programs = tls.getPrograms()
        if not programs:
            continue
        program = programs.get("0") or next(iter(programs.values()))
        raw = tuple(
            (str(p.state), float(p.duration), float(p.minDur if p.minDur is not None else -1))
            for p in program.getPhases()
        )
        greens = tuple(i for i, (s, _, _) in enumerate(raw) if is_green_phase(s))
        if not greens:
            continue
        links: dict[int, list[Movement]] = {}
        incoming: dict[str, Any] = {}
        outgoing: dict[str, Any] = {}
        for in_lane, out_lane, index in tls.getConnections():
            if not (_drives(in_lane) and _drives(out_lane)):
                continue
            links.setdefault(int(index), []).append(Movement(in_lane.getID(), out_lane.getID()))
            incoming[in_lane.getID()] = in_lane
            outgoing[out_lane.getID()] = out_lane
        if not incoming:
            continue
        phases = []
        for i in greens:
            state = raw[i][0]
            moves = tuple(
                dict.fromkeys(m for k, c in enumerate(state) if c in "Gg" for m in links.get(k, []))
            )
            phases.append(GreenPhase(i, state, raw[i][1], moves))
        detectors: dict[str, tuple[Segment, ...]] = {}
        for lane_id, lane in incoming.items():
            found: list[Segment] = []
            _upstream(lane, detector_m, segs, 0, found)
            detectors[lane_id] = tuple(found)
        for lane_id, lane in outgoing.items():
            length = float(lane.getLength())
            cover = min(length, detector_m)
            if cover >= MIN_SEGMENT_M and lane_id not in detectors:
                detectors[lane_id] = (segs.get(lane_id, length - cover, length),)
        speed = {lid: float(ln.getSpeed()) for lid, ln in {**incoming, **outgoing}.items()}
        signals.append(
            SignalSpec(
                str(tls.getID()),
                raw,
                greens,
                tuple(phases),
                tuple(incoming),
                tuple(outgoing),
                speed,
                detectors,
            )
        )
    if not signals:
        raise InvalidInput(f"network {path} has no traffic lights with a green phase to control")
    return Network(path, tuple(signals))


def write_detectors(network: Network, target: Path) -> Path:
    """Write the lane-area detectors as a SUMO additional file."""
    lines = ["<additional>"]
    for seg in network.segments:
        lines.append(
            f"    <laneAreaDetector id={quoteattr(seg.id)} lane={quoteattr(seg.lane)} "
            f'pos="{seg.start:.2f}" endPos="{seg.end:.2f}" freq="86400" file="NUL"/>'
        )
    lines.append("</additional>")
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target
