"""Episodes on the tiny net: safety holds for every controller; metrics on a known run."""

from __future__ import annotations

from pathlib import Path

import pytest

from safecity.traffic import scenarios
from safecity.traffic.controllers import CONTROLLERS
from safecity.traffic.metrics import EpisodeMetrics, gridlocked, read_tripinfo
from safecity.traffic.sim import EpisodeSpec, run_episode
from tests.traffic.conftest import Tiny, write_cfg, write_routes

GREEN, YELLOW = set("Gg"), set("yY")
TINY_YELLOW, TINY_ALL_RED, MIN_GREEN = 3, 2, 5


def check_trace(states: list[str]) -> tuple[int, int]:
    """Assert the safety rules on a signal's per-second states; return (switches, greens)."""
    switches = 0
    for k in range(len(states[0])):
        links = [s[k] for s in states]
        run_start = 0
        for t in range(1, len(links)):
            prev, cur = links[t - 1], links[t]
            if prev in GREEN and cur not in GREEN:
                assert cur in YELLOW, f"link {k}: green -> {cur} at t={t} without yellow"
            if prev in YELLOW and cur not in YELLOW:
                assert t - run_start >= TINY_YELLOW, f"link {k}: yellow of {t - run_start} s"
                assert cur not in GREEN, f"link {k}: yellow -> green at t={t}"
                switches += 1
            if cur != prev:
                run_start = t
    # All-red: after a yellow, no link is green for TINY_ALL_RED seconds (greens disjoint).
    # Minimum green: every complete green run of the signal lasts MIN_GREEN s or more.
    runs, start = 0, 0
    for t in range(1, len(states)):
        if any(c in YELLOW for c in states[t - 1]) and not any(c in YELLOW for c in states[t]):
            window = states[t : t + TINY_ALL_RED]
            assert all(not any(c in GREEN for c in s) for s in window), f"no all-red at t={t}"
        if states[t] != states[t - 1]:
            if any(c in GREEN for c in states[t - 1]) and start > 0:
                assert t - start >= MIN_GREEN, f"green of {t - start} s ending at t={t}"
                runs += 1
            start = t
    return switches, runs


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_safety_holds_for_every_controller(tiny: Tiny, controller: str) -> None:
    sc = scenarios.load(str(tiny.cfg))
    result = run_episode(EpisodeSpec(sc, controller, seed=1, record_states=True))
    assert result.states is not None
    assert set(result.states) == {"A0", "A1", "B0", "B1"}
    total_switches = 0
    for states in result.states.values():
        assert len(states) == 300
        switches, _ = check_trace(states)
        total_switches += switches
    assert total_switches > 4  # the signals did change phase
    assert result.metrics.vehicles == tiny.vehicles


def test_resco_protocol_uses_the_scenario_yellow(tiny: Tiny) -> None:
    sc = scenarios.load(str(tiny.cfg))
    result = run_episode(EpisodeSpec(sc, "max-pressure", 1, protocol="resco", record_states=True))
    assert result.states is not None
    states = result.states["A0"]
    assert any("y" in s for s in states)
    assert not any(s == "r" * len(s) for s in states[1:])  # RESCO: no all-red


def test_metrics_on_a_known_tiny_run(tmp_path: Path, tiny: Tiny) -> None:
    """Thirty cars scheduled at 295 s on one lane cannot all enter before 300 s: the ones left
    outside count, charged 5 s each; a car scheduled after the window does not count."""
    routes = tmp_path / "known.rou.xml"
    jam = "\n".join(
        f'  <vehicle id="late{i}" type="car" depart="295"><route edges="left0A0 A0B0 B0right0"/>'
        "</vehicle>"
        for i in range(30)
    )
    after = '  <vehicle id="after" type="car" depart="350"><route edges="left0A0 A0B0"/></vehicle>'
    n = write_routes(routes, until=100, period=10.0, extra=jam + "\n" + after)
    (tmp_path / tiny.net.name).symlink_to(tiny.net)
    cfg = write_cfg(tmp_path / "known.sumocfg", tmp_path / tiny.net.name, routes, begin=0, end=300)
    m = run_episode(EpisodeSpec(scenarios.load(str(cfg)), "fixed", seed=1)).metrics
    assert m.vehicles == n + 30
    assert m.arrived == n  # the early cars all finished
    assert m.never_inserted >= 25
    assert m.departed == m.vehicles - m.never_inserted
    assert m.avg_delay > 0
    assert m.avg_trip_time > 0
    assert m.congestion_index >= 1.0


def test_tripinfo_arithmetic(tmp_path: Path) -> None:
    path = tmp_path / "t.xml"
    rows = [  # depart, departDelay, arrival, duration, timeLoss, waitingTime
        ("10", "2", "70", "60", "20", "5"),
        ("20", "0", "-1", "40", "10", "1"),
        ("-1", "30", "-1", "0", "0", "0"),  # never inserted, scheduled 30 s before the end
        ("-1", "-5", "-1", "0", "0", "0"),  # scheduled after the end: not counted
    ]
    body = "".join(
        f'<tripinfo id="v{i}" depart="{r[0]}" departDelay="{r[1]}" arrival="{r[2]}" '
        f'duration="{r[3]}" timeLoss="{r[4]}" waitingTime="{r[5]}"/>'
        for i, r in enumerate(rows)
    )
    path.write_text(f"<tripinfos>{body}</tripinfos>", encoding="utf-8")
    m = read_tripinfo(path)
    assert (m.vehicles, m.departed, m.arrived, m.never_inserted) == (3, 2, 1, 1)
    assert m.avg_delay == pytest.approx((22 + 10 + 30) / 3)
    assert m.avg_trip_time == 50
    assert m.avg_wait == 3
    assert m.congestion_index == pytest.approx((62 + 40) / (40 + 30))


def _ep(delay: float, never: int = 0, vehicles: int = 100) -> EpisodeMetrics:
    return EpisodeMetrics(vehicles, vehicles - never, vehicles - never, never, delay, 1, 1, 1)


def test_gridlock_rule() -> None:
    eps = [_ep(20), _ep(22), _ep(21), _ep(50), _ep(21, never=3)]
    assert gridlocked(eps) == [False, False, False, True, True]
