"""What a controller sees: detector readings and its own signal's state. Pure data.

Controllers import only this module (and each other); the harness builds these from
lane-area detectors covering at most 100 m before each stop line (and after it, on the
outgoing lanes), so a controller never needs, nor may use, TraCI or libsumo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

KEEP = -1
"""``Controller.decide`` returns KEEP, or the index of the green phase to show next."""


@dataclass(frozen=True, slots=True)
class LaneReading:
    """One lane's detector readings at the decision time.

    ``count``: vehicles on the detector; ``queue``: of those, halting ones; ``occupancy``:
    percent of the detector length covered by vehicles; ``mean_speed``: m/s over the vehicles
    on it (-1 when empty); ``length``: metres covered; ``speed_limit``: m/s.
    """

    lane: str
    count: int
    queue: int
    occupancy: float
    mean_speed: float
    length: float
    speed_limit: float


@dataclass(frozen=True, slots=True)
class Movement:
    """A link of the signal: from an incoming lane to an outgoing lane."""

    incoming: str
    outgoing: str


@dataclass(frozen=True, slots=True)
class GreenPhase:
    """A green phase of the net's program: its state string and the movements it serves."""

    program_index: int
    state: str
    duration: float
    movements: tuple[Movement, ...]


@dataclass(frozen=True, slots=True)
class Observation:
    """A signal at a decision time: which green it shows, for how long, and the detectors."""

    signal: str
    time: float
    green: int
    time_in_green: float
    phases: tuple[GreenPhase, ...]
    incoming: Mapping[str, LaneReading]
    outgoing: Mapping[str, LaneReading]
    min_green: float
    lost_time: float
