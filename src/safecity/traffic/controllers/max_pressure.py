"""Max pressure (Varaiya 2013), as in RESCO's MAXPRESSURE baseline.

The pressure of a green phase is the sum over the movements it serves of (vehicles on the
incoming lane's detector - those on the outgoing lane's detector), counting halting
vehicles as RESCO does; the phase with the
highest pressure is shown; among equal pressures the first in program order (RESCO's
argmax, also when the current green is one of them).
"""

from __future__ import annotations

from typing import ClassVar

from safecity.traffic.controllers.base import Controller
from safecity.traffic.observation import KEEP, Observation


def phase_pressures(obs: Observation, *, halting_only: bool = True) -> list[float]:
    """Pressure of every green phase of ``obs``: incoming - outgoing queue (halting
    vehicles, RESCO's measure) or vehicle count (``halting_only=False``)."""
    pressures = []
    for phase in obs.phases:
        pressure = 0.0
        for move in phase.movements:
            inc = obs.incoming.get(move.incoming)
            out = obs.outgoing.get(move.outgoing)
            if halting_only:
                pressure += (inc.queue if inc else 0) - (out.queue if out else 0)
            else:
                pressure += (inc.count if inc else 0) - (out.count if out else 0)
        pressures.append(pressure)
    return pressures


class MaxPressure(Controller):
    name: ClassVar[str] = "max-pressure"
    defaults: ClassVar[dict[str, float]] = {"halting_only": 1.0}

    def decide(self, obs: Observation) -> int:
        pressures = phase_pressures(obs, halting_only=bool(self.params["halting_only"]))
        top = max(pressures)
        best = pressures.index(top)  # RESCO: numpy argmax, the first of equal pressures
        return KEEP if best == obs.green else best
