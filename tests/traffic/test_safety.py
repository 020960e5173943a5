"""The safety layer on its own: minimum green, yellow, all-red, impossible timings."""

from __future__ import annotations

import pytest

from safecity.platform.errors import InvalidInput
from safecity.traffic.controllers import create
from safecity.traffic.safety import SignalMachine, Timing, red_state, yellow_state

GREENS = ["GGrr", "rrGG", "GrGr"]


def test_yellow_and_red_only_for_links_leaving_green() -> None:
    assert yellow_state("GgGr", "rGGr") == "ygGr"
    assert red_state("GgGr", "rGGr") == "rgGr"


def test_machine_refuses_switch_before_min_green_then_runs_yellow_and_all_red() -> None:
    m = SignalMachine(GREENS, Timing((5.0, 5.0, 5.0), 3.0, 2.0), start=0, now=0.0)
    assert m.request(1, 4.0) is False
    assert m.state(4.0) == "GGrr"
    assert m.request(1, 5.0) is True
    shown = [m.state(t) for t in (5.0, 6.0, 7.0, 8.0, 9.0, 10.0)]
    assert shown == ["yyrr", "yyrr", "yyrr", "rrrr", "rrrr", "rrGG"]
    assert m.time_in_green(10.0) == 0.0
    assert m.can_switch(14.0) is False
    assert m.can_switch(15.0) is True


def test_switch_to_the_same_green_or_during_transition_is_a_no_op() -> None:
    m = SignalMachine(GREENS, Timing((1.0,) * 3, 3.0, 0.0), start=0, now=0.0)
    assert m.request(0, 10.0) is False
    assert m.request(2, 10.0) is True
    assert m.request(1, 11.0) is False  # still yellow
    assert m.state(11.0) == "Gyrr"  # link 0 green in both stays green; link 2 waits
    assert m.state(13.0) == "GrGr"
    with pytest.raises(InvalidInput):
        m.request(7, 20.0)


@pytest.mark.parametrize(
    ("mins", "yellow", "all_red"), [((0.0,), 3.0, 0.0), ((5.0,), 0.0, 0.0), ((5.0,), 3.0, -1.0)]
)
def test_impossible_timings_are_rejected(
    mins: tuple[float, ...], yellow: float, all_red: float
) -> None:
    with pytest.raises(InvalidInput, match="impossible timing"):
        Timing(mins, yellow, all_red)


def test_timing_from_program_takes_yellow_all_red_and_min_dur() -> None:
    program = [("GGrr", 30, 7), ("yyrr", 4, -1), ("rrrr", 2, -1), ("rrGG", 20, -1), ("rryy", 4, -1)]
    t = Timing.from_program(program, [0, 3])
    assert (t.min_green, t.yellow, t.all_red, t.lost_time) == ((7, 5.0), 4, 2, 6)


@pytest.mark.parametrize(
    "params", [{"max_red_s": 1.0}, {"decision_s": 0.0}, {"spillback_occupancy": 150.0}, {"x": 1.0}]
)
def test_controller_config_with_impossible_settings(params: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        create("safecity", params)


def test_unknown_controller() -> None:
    with pytest.raises(InvalidInput, match="unknown controller"):
        create("genius")
