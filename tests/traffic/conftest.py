"""A tiny network of our own for the traffic tests: a 2x2 grid of signals made by
``netgenerate`` (one green per approach, 3 s yellow, 2 s all-red) and handwritten demand.
No benchmark data is used in tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from safecity.traffic.sumo_env import binary

ROUTES = (
    "left0A0 A0B0 B0right0",
    "right1B1 B1A1 A1left1",
    "bottom0A0 A0A1 A1top0",
    "top1B1 B1B0 B0bottom1",
    "left1A1 A1A0 A0bottom0",
    "bottom1B0 B0B1 B1right1",
)


@dataclass(frozen=True)
class Tiny:
    folder: Path
    net: Path
    routes: Path
    cfg: Path
    vehicles: int


def netgenerate(target: Path, *, signals: bool) -> Path:
    args = [
        str(binary("netgenerate")), "--grid", "--grid.number", "2", "--grid.length", "150",
        "--grid.attach-length", "120", "--no-turnarounds", "true", "-o", str(target),
    ]  # fmt: skip
    if signals:
        args += [
            "--default-junction-type", "traffic_light", "--tls.default-type", "static",
            "--tls.layout", "incoming", "--tls.allred.time", "2", "--tls.yellow.time", "3",
        ]  # fmt: skip
    else:
        args += ["--default-junction-type", "priority"]
    subprocess.run(args, check=True, capture_output=True)
    return target


def write_routes(target: Path, *, until: float, period: float, extra: str = "") -> int:
    lines = ["<routes>", '  <vType id="car" accel="2.6" decel="4.5" length="5" maxSpeed="14"/>']
    n, t = 0, 0.0
    while t < until:
        edges = ROUTES[n % len(ROUTES)]
        lines.append(
            f'  <vehicle id="v{n}" type="car" depart="{t:.1f}"><route edges="{edges}"/></vehicle>'
        )
        n += 1
        t += period
    lines.append(extra)
    lines.append("</routes>")
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return n


def write_cfg(target: Path, net: Path, routes: Path, *, begin: float, end: float) -> Path:
    target.write_text(
        f"""<configuration>
  <input><net-file value="{net.name}"/><route-files value="{routes.name}"/></input>
  <time><begin value="{begin:g}"/><end value="{end:g}"/></time>
</configuration>
""",
        encoding="utf-8",
    )
    return target


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    folder = tmp_path_factory.mktemp("tiny")
    net = netgenerate(folder / "tiny.net.xml", signals=True)
    routes = folder / "tiny.rou.xml"
    n = write_routes(routes, until=240, period=2.0)
    cfg = write_cfg(folder / "tiny.sumocfg", net, routes, begin=0, end=300)
    return Tiny(folder, net, routes, cfg, n)
