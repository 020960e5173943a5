"""Controller decisions on hand-made observations (no simulator)."""

from __future__ import annotations

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
