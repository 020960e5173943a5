"""SafeCity's adaptive controller, first version: queue-weighted max pressure with guards.

Per green phase, summed over the movements it serves (as max pressure does):

* demand = halting vehicles + ``approach_weight`` x moving vehicles on the incoming lane's
  detector (the queue is served first, the platoon still coming counts half);
* minus ``out_weight`` x the halting vehicles on the outgoing lane's detector;
* a movement whose exit detector is nearly full (occupancy >= ``spillback_occupancy``)
  contributes nothing: its vehicles cannot leave, and giving it green invites gridlock.

Phase-length look-ahead: a green still in use is held at least ``hold_factor`` x the
change's lost time (yellow + all-red from the signal's timings), ``saturated_hold_factor`` x
when its lanes queue ``saturated_queue`` vehicles or more on average: long yellows are not
paid for short greens (cologne1's 5 s yellows: 59 -> 22 s delay with the network's timings
on tuning seeds), and saturated approaches get the longer greens that clear them
(arterial4x4).
The best phase is shown; but when an incoming lane with a queue has had no green for
``max_red_s`` (and its exit is not full), a phase serving it goes next (no approach
starves, e.g. behind the Ingolstadt stub lanes). Decisions every ``decision_s`` = 10 s on every map.
``switch_margin`` / ``relative_margin`` add hysteresis against switching (vehicles per second
of lost time / share of the current score); tuning found no setting that helped every map,
so both default to 0.

One set of parameters for every network, tuned on seeds 101-108 only (never 1-5), on all
eight RESCO maps under both safety protocols.
"""

from __future__ import annotations

from typing import ClassVar

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers.base import Controller
from safecity.traffic.observation import KEEP, GreenPhase, Observation


class SafeCityAdaptive(Controller):
    name: ClassVar[str] = "safecity"
    defaults: ClassVar[dict[str, float]] = {
        "decision_s": 10.0,
        "approach_weight": 0.5,
        "out_weight": 1.0,
        "switch_margin": 0.0,
        "relative_margin": 0.0,
        "spillback_occupancy": 85.0,
        "max_red_s": 120.0,
        "hold_factor": 2.0,
        "saturated_hold_factor": 3.0,
        "saturated_queue": 5.0,
    }

    def __init__(self, params: dict[str, float] | None = None) -> None:
        super().__init__(params)
        self.decision_s = self.params["decision_s"]
        self._lane_green: dict[str, float] = {}
        self._first_seen: float | None = None

    def check_params(self) -> None:
        p = self.params
        if p["decision_s"] <= 0:
            raise InvalidInput("safecity: decision_s must be > 0")
        if p["max_red_s"] <= p["decision_s"]:
            raise InvalidInput("safecity: max_red_s must exceed decision_s")
        if not 0 < p["spillback_occupancy"] <= 100:
            raise InvalidInput("safecity: spillback_occupancy must be in (0, 100]")
        weights = (
            "approach_weight",
            "out_weight",
            "switch_margin",
            "relative_margin",
            "hold_factor",
        )
        if min(p[k] for k in weights) < 0:
            raise InvalidInput("safecity: weights, margins and holds must be >= 0")

    def _blocked(self, obs: Observation, outgoing: str) -> bool:
        exit_ = obs.outgoing.get(outgoing)
        return exit_ is not None and exit_.occupancy >= self.params["spillback_occupancy"]

    def _score(self, obs: Observation, phase: GreenPhase) -> tuple[float, int]:
        """(score, vehicles moving towards the stop line on the lanes it serves)."""
        p = self.params
        score, moving = 0.0, 0
        for move in phase.movements:
            reading = obs.incoming.get(move.incoming)
            if reading is None or reading.count == 0:
                continue
            if self._blocked(obs, move.outgoing):
                continue  # the exit is full: green would not move anyone
            exit_ = obs.outgoing.get(move.outgoing)
            demand = reading.queue + p["approach_weight"] * (reading.count - reading.queue)
            score += demand - p["out_weight"] * (exit_.queue if exit_ else 0)
            moving += reading.count - reading.queue
        return score, moving

    def _starving(self, obs: Observation) -> int | None:
        """The phase serving the lane that has waited longest with a queue, once a lane has
        waited ``max_red_s`` since it last had green; None when none has."""
        now = obs.time
        if self._first_seen is None:
            self._first_seen = now - obs.time_in_green
        for move in obs.phases[obs.green].movements:
            self._lane_green[move.incoming] = now
        worst: tuple[float, int] | None = None
        for i, phase in enumerate(obs.phases):
            if i == obs.green:
                continue
            for move in phase.movements:
                reading = obs.incoming.get(move.incoming)
                if reading is None or reading.queue == 0 or self._blocked(obs, move.outgoing):
                    continue
                waited = now - self._lane_green.get(move.incoming, self._first_seen)
                if waited >= self.params["max_red_s"] and (worst is None or waited > worst[0]):
                    worst = (waited, i)
        return worst[1] if worst else None

    def decide(self, obs: Observation) -> int:
        p = self.params
        starving = self._starving(obs)
        scored = [self._score(obs, phase) for phase in obs.phases]
        served = [
            r for lane in {m.incoming for m in obs.phases[obs.green].movements}
            if (r := obs.incoming.get(lane)) is not None
        ]  # fmt: skip
        hold = 0.0
        if any(r.count > 0 for r in served):
            saturated = sum(r.queue for r in served) >= p["saturated_queue"] * len(served)
            hold = p["saturated_hold_factor" if saturated else "hold_factor"] * obs.lost_time
        if obs.time_in_green < hold:
            return KEEP  # a short green still in use would waste the change's lost time
        if starving is not None:
            return starving
        current = scored[obs.green][0]
        best = max(range(len(scored)), key=lambda i: (scored[i][0], i == obs.green))
        if best == obs.green:
            return KEEP
        margin = self.params["switch_margin"] * obs.lost_time + self.params[
            "relative_margin"
        ] * abs(current)
        # Keep a green that still discharges (vehicles moving on its lanes) unless another
        # phase wins by more than the change costs; a green nobody moves on gaps out.
        if scored[obs.green][1] > 0 and scored[best][0] - current <= margin:
            return KEEP
        return best
