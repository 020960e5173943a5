"""Webster's fixed-time plan, re-planned from the detectors (the textbook baseline).

Every ``replan_s`` the controller turns what its detectors saw into a flow ratio per phase
— y = q/s of the phase's busiest incoming lane, the flow q read from its lane-area
detector as density × mean speed (q = k·v) and s the ``saturation_flow`` — and applies
Webster (1958): cycle ``C = (1.5 L + 5) / (1 - Y)`` with ``Y = Σ yᵢ`` and ``L`` the lost
time per change times the number of phases, clamped to [``min_cycle_s``, ``max_cycle_s``]
(Y ≥ 0.95 takes the maximum), and greens ``gᵢ = (C - L) · yᵢ / Y`` (at least
``min_green_s``). Phases then follow each other in program order with those greens, like
a fixed-time controller whose plan is revised ten minutes at a time. Until its first
plan it uses the net's own green durations.
"""

from __future__ import annotations

from typing import ClassVar

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers.base import Controller
from safecity.traffic.observation import KEEP, LaneReading, Observation


def _flow_ratio(reading: LaneReading, saturation: float) -> float:
    """q/s of one lane: flow from the detector as density × speed (q = k·v, vehicles per
    second), over the lane's saturation flow (vehicles per second of green)."""
    if reading.length <= 0 or reading.mean_speed <= 0:
        return 0.0
    return (reading.count / reading.length) * reading.mean_speed / saturation


def webster_plan(
    ratios: list[float],
    lost_per_change: float,
    *,
    min_cycle: float,
    max_cycle: float,
    min_green: float,
) -> tuple[float, list[float]]:
    """(cycle, greens) for flow ratios ``ratios`` (one per phase)."""
    n = len(ratios)
    lost = lost_per_change * n
    y = [max(0.01, r) for r in ratios]
    total = sum(y)
    cycle = max_cycle if total >= 0.95 else (1.5 * lost + 5) / (1 - total)
    cycle = min(max_cycle, max(min_cycle, cycle, lost + n * min_green))
    effective = cycle - lost
    greens = [max(min_green, effective * yi / total) for yi in y]
    return cycle, greens


class Webster(Controller):
    name: ClassVar[str] = "webster"
    defaults: ClassVar[dict[str, float]] = {
        "decision_s": 1.0,
        "replan_s": 600.0,
        "min_cycle_s": 40.0,
        "max_cycle_s": 150.0,
        "min_green_s": 7.0,
        "saturation_flow": 0.5,  # vehicles per second of green per lane (1,800 per hour)
    }

    def __init__(self, params: dict[str, float] | None = None) -> None:
        super().__init__(params)
        self.decision_s = self.params["decision_s"]
        self.greens: list[float] | None = None
        self.cycle: float | None = None
        self._sums: list[float] = []
        self._samples = 0
        self._since: float | None = None

    def check_params(self) -> None:
        p = self.params
        if p["decision_s"] <= 0 or p["replan_s"] <= 0:
            raise InvalidInput("webster: decision_s and replan_s must be positive")
        if not 0 < p["min_cycle_s"] <= p["max_cycle_s"]:
            raise InvalidInput("webster: need 0 < min_cycle_s <= max_cycle_s")

    def _observe(self, obs: Observation) -> None:
        if len(self._sums) != len(obs.phases):
            self._sums = [0.0] * len(obs.phases)
        for i, phase in enumerate(obs.phases):
            names = {m.incoming for m in phase.movements}
            readings = [obs.incoming[x] for x in names if x in obs.incoming]
            saturation = self.params["saturation_flow"]
            self._sums[i] += max((_flow_ratio(r, saturation) for r in readings), default=0.0)
        self._samples += 1
        if self._since is None:
            self._since = obs.time
        if obs.time - self._since >= self.params["replan_s"]:
            ratios = [s / self._samples for s in self._sums]
            self.cycle, self.greens = webster_plan(
                ratios,
                obs.lost_time,
                min_cycle=self.params["min_cycle_s"],
                max_cycle=self.params["max_cycle_s"],
                min_green=max(self.params["min_green_s"], obs.min_green),
            )
            self._sums, self._samples, self._since = [0.0] * len(obs.phases), 0, obs.time

    def decide(self, obs: Observation) -> int:
        self._observe(obs)
        green = (
            self.greens[obs.green] if self.greens is not None else obs.phases[obs.green].duration
        )
        if obs.time_in_green < green:
            return KEEP
        return (obs.green + 1) % len(obs.phases)
