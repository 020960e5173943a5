"""Vehicle-actuated control (gap-out / max-out), the classic detector-driven baseline.

The green in use is extended while its approach lanes still hold vehicles — any vehicle
on a served incoming lane's detector counts as demand, so a platoon still arriving keeps
the green — up to ``max_green_s``. When the served lanes are empty (gap-out) or the maximum
is reached (max-out), the next phase *in program order that has demand* follows; phases
with nobody waiting are skipped. With no demand anywhere the green stays (rest in green).
This is how most field actuated controllers and SUMO's ``actuated`` programs behave, with
the detectors the harness gives every controller (no loop timing of gaps: a lane counts
as empty when its detector reads no vehicle).
"""

from __future__ import annotations

from typing import ClassVar

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers.base import Controller
from safecity.traffic.observation import KEEP, Observation


def phase_demand(obs: Observation, phase: int) -> int:
    """Vehicles on the detectors of the incoming lanes a phase serves (each lane once)."""
    lanes = {m.incoming for m in obs.phases[phase].movements}
    return sum(obs.incoming[lane].count for lane in lanes if lane in obs.incoming)


class Actuated(Controller):
    name: ClassVar[str] = "actuated"
    defaults: ClassVar[dict[str, float]] = {"decision_s": 5.0, "max_green_s": 45.0}

    def __init__(self, params: dict[str, float] | None = None) -> None:
        super().__init__(params)
        self.decision_s = self.params["decision_s"]

    def check_params(self) -> None:
        if self.params["decision_s"] <= 0:
            raise InvalidInput("actuated: decision_s must be positive")
        if self.params["max_green_s"] < self.params["decision_s"]:
            raise InvalidInput("actuated: max_green_s must be at least decision_s")

    def decide(self, obs: Observation) -> int:
        n = len(obs.phases)
        current = phase_demand(obs, obs.green)
        if current > 0 and obs.time_in_green < self.params["max_green_s"]:
            return KEEP  # vehicles still coming: extend
        for step in range(1, n):
            candidate = (obs.green + step) % n
            if phase_demand(obs, candidate) > 0:
                return candidate
        return KEEP  # nobody waits elsewhere: rest in green
