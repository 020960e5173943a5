"""Controller decisions on hand-made observations (no simulator)."""

from __future__ import annotations

import pytest

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers import create
from safecity.traffic.observation import KEEP, GreenPhase, LaneReading, Movement, Observation

NS = GreenPhase(0, "GGrr", 30, (Movement("n_in", "s_out"), Movement("s_in", "n_out")))
EW = GreenPhase(2, "rrGG", 30, (Movement("e_in", "w_out"), Movement("w_in", "e_out")))


def lane(name: str, count: int = 0, queue: int = 0, occupancy: float = 0.0) -> LaneReading:
    return LaneReading(name, count, queue, occupancy, 5.0 if count > queue else 0.0, 100, 13.9)


def obs(
    t: float, green: int, in_green: float, inc: dict[str, LaneReading], out: dict[str, LaneReading]
) -> Observation:
    lanes_in = {n: inc.get(n, lane(n)) for n in ("n_in", "s_in", "e_in", "w_in")}
    lanes_out = {n: out.get(n, lane(n)) for n in ("n_out", "s_out", "e_out", "w_out")}
    return Observation("x", t, green, in_green, (NS, EW), lanes_in, lanes_out, 5.0, 3.0)


def test_max_pressure_picks_the_phase_with_the_larger_queue_difference() -> None:
    mp = create("max-pressure")
    queued_ew = {"e_in": lane("e_in", 6, 6), "n_in": lane("n_in", 2, 2)}
    assert mp.decide(obs(10, 0, 10, queued_ew, {})) == 1
    # A full downstream queue removes the pressure: the E-W queue cannot leave.
    blocked = {"w_out": lane("w_out", 8, 8)}
    assert mp.decide(obs(10, 0, 10, queued_ew, blocked)) == KEEP


def test_safecity_holds_a_short_green_in_use_then_switches() -> None:
    sc = create("safecity")
    queued_ew = {"e_in": lane("e_in", 6, 6), "n_in": lane("n_in", 2, 0)}
    assert sc.decide(obs(10, 0, 5, queued_ew, {})) == KEEP  # 5 s < 2 x 3 s lost time
    assert sc.decide(obs(20, 0, 15, queued_ew, {})) == 1
    # An empty green is not held: it gaps out at once.
    assert create("safecity").decide(obs(10, 0, 5, {"e_in": lane("e_in", 6, 6)}, {})) == 1


def test_safecity_holds_longer_when_saturated() -> None:
    sc = create("safecity")
    busy = {"n_in": lane("n_in", 9, 8), "s_in": lane("s_in", 9, 8), "e_in": lane("e_in", 30, 30)}
    assert sc.decide(obs(10, 0, 8, busy, {})) == KEEP  # 8 s < 3 x 3 s when saturated
    assert sc.decide(obs(20, 0, 10, busy, {})) == 1


def test_safecity_ignores_movements_into_a_full_exit() -> None:
    sc = create("safecity")
    queued_ew = {"e_in": lane("e_in", 6, 6), "n_in": lane("n_in", 1, 1)}
    full = {"w_out": lane("w_out", 12, 2, occupancy=95.0)}
    assert sc.decide(obs(20, 0, 15, queued_ew, full)) == KEEP


def test_safecity_serves_a_starving_lane() -> None:
    sc = create("safecity", {"max_red_s": 60})
    heavy_ns = {"n_in": lane("n_in", 20, 20), "w_in": lane("w_in", 1, 1)}
    assert sc.decide(obs(20, 0, 20, heavy_ns, {})) == KEEP
    assert sc.decide(obs(50, 0, 50, heavy_ns, {})) == KEEP
    assert sc.decide(obs(81, 0, 81, heavy_ns, {})) == 1  # w_in waited 61 s > 60 s


def test_actuated_extends_while_vehicles_come_then_gaps_out_to_a_waiting_phase() -> None:
    c = create("actuated")
    waiting_ew = {"e_in": lane("e_in", 3, 3)}
    assert c.decide(obs(10, 0, 10, {"n_in": lane("n_in", 2, 0), **waiting_ew}, {})) == KEEP
    assert c.decide(obs(20, 0, 20, waiting_ew, {})) == 1  # north-south empty: gap-out
    assert c.decide(obs(70, 0, 50, {"n_in": lane("n_in", 2, 0), **waiting_ew}, {})) == 1  # max-out
    assert c.decide(obs(80, 0, 20, {}, {})) == KEEP  # nobody anywhere: rest in green


def test_webster_plans_from_detector_flows_and_cycles_through_its_greens() -> None:
    from safecity.traffic.controllers.webster import webster_plan

    cycle, greens = webster_plan([0.45, 0.225], 3.0, min_cycle=40, max_cycle=150, min_green=7)
    assert cycle == pytest.approx((1.5 * 6 + 5) / (1 - 0.675))  # Webster's optimum, 43.1 s
    assert greens[0] == pytest.approx(2 * greens[1])  # split by flow ratio
    assert sum(greens) == pytest.approx(cycle - 6)
    assert webster_plan([0.6, 0.5], 3.0, min_cycle=40, max_cycle=150, min_green=7)[0] == 150
    assert webster_plan([0.1, 0.1], 3.0, min_cycle=40, max_cycle=150, min_green=7)[0] == 40
    c = create("webster", {"replan_s": 60})
    # flow = density x speed: 8 moving vehicles on 100 m at 5 m/s against 2 on the cross street
    busy_ns = {"n_in": lane("n_in", 8, 0), "e_in": lane("e_in", 2, 0)}
    assert c.decide(obs(0, 0, 10, busy_ns, {})) == KEEP  # the net's own 30 s green first
    for t in range(1, 62):
        c.decide(obs(t, 0, 1, busy_ns, {}))
    assert c.greens is not None
    assert c.greens[0] > c.greens[1]
    assert c.decide(obs(70, 0, c.greens[0] + 0.5, busy_ns, {})) == 1
    with pytest.raises(InvalidInput):
        create("webster", {"min_cycle_s": 200, "max_cycle_s": 100})
