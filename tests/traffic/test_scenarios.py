"""Bad input gives clear errors: missing/corrupt net or route file, no signals, bad config."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from safecity.platform.errors import InvalidInput
from safecity.traffic import scenarios
from safecity.traffic.network import load_network
from safecity.traffic.sim import EpisodeSpec, run_episode
from tests.traffic.conftest import Tiny, netgenerate, write_cfg, write_routes


def test_tiny_config_loads(tiny: Tiny) -> None:
    sc = scenarios.load(str(tiny.cfg))
    assert (sc.name, sc.net, sc.routes, sc.begin, sc.end) == (
        "tiny",
        tiny.net,
        (tiny.routes,),
        0,
        300,
    )
    net = load_network(tiny.net)
    assert sorted(s.id for s in net.signals) == ["A0", "A1", "B0", "B1"]
    a0 = next(s for s in net.signals if s.id == "A0")
    assert len(a0.phases) == 4  # one green per approach
    for lane in a0.incoming:  # every approach has a detector of at most 100 m
        assert 0 < sum(seg.length for seg in a0.detectors[lane]) <= 100.0


def test_missing_config_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        scenarios.load(str(tmp_path / "nope.sumocfg"))
    with pytest.raises(InvalidInput, match="unknown scenario"):
        scenarios.load("atlantis")


def test_resco_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny: Tiny) -> None:
    monkeypatch.setenv(scenarios.RESCO_DIR_ENV, str(tmp_path))
    with pytest.raises(InvalidInput, match=scenarios.RESCO_DIR_ENV):
        scenarios.load("cologne1")
    # A synthetic grid: demand file k for seed k, tuning seeds cycle over files 11-30.
    grid = tmp_path / "grid4x4"
    grid.mkdir()
    shutil.copy(tiny.net, grid / "grid4x4.net.xml")
    for k in range(1, 31):
        shutil.copy(tiny.routes, grid / f"grid4x4_{k}.rou.xml")
    write_cfg(grid / "grid4x4.sumocfg", grid / "grid4x4.net.xml", grid / "grid4x4_1.rou.xml",
              begin=0, end=3600)  # fmt: skip
    sc = scenarios.load("grid4x4")
    assert sc.routes_for(3) == (grid / "grid4x4_3.rou.xml",)
    assert sc.routes_for(101) == (grid / "grid4x4_11.rou.xml",)
    assert sc.routes_for(110) == (grid / "grid4x4_20.rou.xml",)
    assert (sc.decision_s, sc.yellow_s) == (10.0, 3.0)


def test_missing_net_and_route_files(tmp_path: Path, tiny: Tiny) -> None:
    cfg = write_cfg(tmp_path / "a.sumocfg", tmp_path / "gone.net.xml", tiny.routes, begin=0, end=60)
    with pytest.raises(InvalidInput, match="network file not found"):
        scenarios.load(str(cfg))
    shutil.copy(tiny.net, tmp_path / "n.net.xml")
    cfg = write_cfg(tmp_path / "b.sumocfg", tmp_path / "n.net.xml", tmp_path / "r.rou.xml",
                    begin=0, end=60)  # fmt: skip
    with pytest.raises(InvalidInput, match="route file not found"):
        scenarios.load(str(cfg))


def test_corrupt_files(tmp_path: Path, tiny: Tiny) -> None:
    (tmp_path / "bad.sumocfg").write_text("<configuration><input>", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not valid XML"):
        scenarios.load(str(tmp_path / "bad.sumocfg"))
    net = tmp_path / "broken.net.xml"
    net.write_text(tiny.net.read_text(encoding="utf-8")[:5000], encoding="utf-8")
    with pytest.raises(InvalidInput, match="could not be read"):
        load_network(net)
    routes = tmp_path / "broken.rou.xml"
    routes.write_text('<routes><vehicle id="x" depart="0">', encoding="utf-8")
    shutil.copy(tiny.net, tmp_path / "ok.net.xml")
    cfg = write_cfg(tmp_path / "c.sumocfg", tmp_path / "ok.net.xml", routes, begin=0, end=60)
    with pytest.raises(InvalidInput, match=r"route file .* is not valid XML"):
        scenarios.load(str(cfg))


def test_config_with_bad_window(tmp_path: Path, tiny: Tiny) -> None:
    cfg = write_cfg(tmp_path / "w.sumocfg", tiny.net, tiny.routes, begin=100, end=50)
    shutil.copy(tiny.net, tmp_path / tiny.net.name)
    shutil.copy(tiny.routes, tmp_path / tiny.routes.name)
    with pytest.raises(InvalidInput, match="not after begin"):
        scenarios.load(str(cfg))


def test_network_without_signals(tmp_path: Path) -> None:
    net = netgenerate(tmp_path / "plain.net.xml", signals=False)
    with pytest.raises(InvalidInput, match="no traffic lights"):
        load_network(net)
    routes = tmp_path / "plain.rou.xml"
    write_routes(routes, until=10, period=5)
    cfg = write_cfg(tmp_path / "plain.sumocfg", net, routes, begin=0, end=30)
    with pytest.raises(InvalidInput, match="no traffic lights"):
        run_episode(EpisodeSpec(scenarios.load(str(cfg)), "max-pressure", seed=1))


def test_bad_demand_scale(tiny: Tiny) -> None:
    with pytest.raises(InvalidInput, match="scale"):
        run_episode(EpisodeSpec(scenarios.load(str(tiny.cfg)), "fixed", seed=1, scale=0))
