"""RESCO benchmark scenarios, located through ``SAFECITY_RESCO_DIR`` (never copied here).

The six city cuts are read from their ``.sumocfg`` (net, routes, begin/end). The two
synthetic grids run ``-n <name>.net.xml -r <name>_<k>.rou.xml`` over 0-3600 s, with demand
file k for episode k. Any other ``.sumocfg`` path works as a scenario too (the tests run on
a tiny network of their own this way).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from safecity.platform.errors import InvalidInput

RESCO_DIR_ENV = "SAFECITY_RESCO_DIR"
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_RESCO_DIR = REPO_ROOT.parent / "shared" / "benchmarks" / "traffic" / "resco"

CITY_SCENARIOS = ("cologne1", "cologne3", "cologne8", "ingolstadt1", "ingolstadt7", "ingolstadt21")
SYNTHETIC_SCENARIOS = ("grid4x4", "arterial4x4")
RESCO_SCENARIOS = SYNTHETIC_SCENARIOS + CITY_SCENARIOS

# RESCO's protocol: a decision every 10 s with 3 s yellows (5 s / 2 s in arterial4x4).
_RESCO_STEP = {"arterial4x4": (5.0, 2.0)}


@dataclass(frozen=True)
class Scenario:
    """One net + its demand over a time window, with RESCO's decision step and yellow."""

    name: str
    net: Path
    routes: tuple[Path, ...]
    begin: float
    end: float
    decision_s: float = 10.0
    yellow_s: float = 3.0
    demand_files: tuple[Path, ...] = field(default=())

    def routes_for(self, seed: int) -> tuple[Path, ...]:
        """Route files of the episode run with ``seed``.

        Synthetic grids have numbered demand files: seed k uses file k (scoring seeds 1-5 use
        files 1-5); the tuning seeds 101-110... cycle over files 11-30 so that tuning never
        sees a scoring file. With one demand file every seed uses it.
        """
        if not self.demand_files:
            return self.routes
        files = self.demand_files
        if len(files) == 1:
            return (files[0],)
        if 1 <= seed <= len(files):
            return (files[seed - 1],)
        tuning = files[10:] or files
        return (tuning[(seed - 101) % len(tuning)],)


def resco_dir() -> Path:
    """The RESCO data folder (``$SAFECITY_RESCO_DIR``, else ../shared/benchmarks/traffic/resco)."""
    raw = os.environ.get(RESCO_DIR_ENV)
    return Path(raw).expanduser() if raw else DEFAULT_RESCO_DIR


def _files(value: str, base: Path) -> tuple[Path, ...]:
    return tuple(base / part for part in value.replace(",", " ").split())


def from_sumocfg(path: Path, *, name: str | None = None) -> Scenario:
    """A scenario from a ``.sumocfg`` file (net-file, route-files, begin, end)."""
    if not path.is_file():
        raise InvalidInput(f"scenario config not found: {path}")
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - local file the operator named
    except ET.ParseError as exc:
        raise InvalidInput(f"scenario config {path} is not valid XML: {exc}") from exc
    values: dict[str, str] = {}
    for tag in ("net-file", "route-files", "begin", "end"):
        node = root.find(f".//{tag}")
        if node is not None and node.get("value"):
            values[tag] = str(node.get("value"))
    if "net-file" not in values:
        raise InvalidInput(f"scenario config {path} names no net-file")
    base = path.parent
    nets = _files(values["net-file"], base)
    routes = _files(values.get("route-files", ""), base)
    if not routes:
        raise InvalidInput(f"scenario config {path} names no route-files")
    try:
        begin = float(values.get("begin", "0"))
        end = float(values.get("end", "3600"))
    except ValueError as exc:
        raise InvalidInput(f"scenario config {path}: begin/end are not numbers") from exc
    if end <= begin:
        raise InvalidInput(f"scenario config {path}: end {end:g} is not after begin {begin:g}")
    scenario_name = name or path.name.removesuffix(".sumocfg")
    step, yellow = _RESCO_STEP.get(scenario_name, (10.0, 3.0))
    scenario = Scenario(scenario_name, nets[0], routes, begin, end, step, yellow)
    check_files(scenario)
    return scenario


def _demand_files(folder: Path, name: str) -> tuple[Path, ...]:
    numbered: list[tuple[int, Path]] = []
    for candidate in folder.glob(f"{name}_*.rou.xml"):
        suffix = candidate.name.removeprefix(f"{name}_").removesuffix(".rou.xml")
        if suffix.isdigit():
            numbered.append((int(suffix), candidate))
    return tuple(p for _, p in sorted(numbered))


def load(name: str) -> Scenario:
    """A RESCO scenario by name, or any ``.sumocfg`` given as a path."""
    if name.endswith(".sumocfg"):
        return from_sumocfg(Path(name))
    if name not in RESCO_SCENARIOS:
        raise InvalidInput(
            f"unknown scenario {name!r}; choose one of {', '.join(RESCO_SCENARIOS)} "
            "or give a .sumocfg path"
        )
    folder = resco_dir() / name
    if not folder.is_dir():
        raise InvalidInput(f"RESCO data for {name} not found in {folder} (set {RESCO_DIR_ENV})")
    scenario = from_sumocfg(folder / f"{name}.sumocfg", name=name)
    if name in SYNTHETIC_SCENARIOS:
        demand = _demand_files(folder, name)
        if not demand:
            raise InvalidInput(f"no demand files {name}_<k>.rou.xml in {folder}")
        scenario = Scenario(
            name,
            scenario.net,
            (demand[0],),
            0.0,
            3600.0,
            scenario.decision_s,
            scenario.yellow_s,
            demand,
        )
    return scenario


def resolve(spec: str) -> list[Scenario]:
    """``all``, a comma-separated list of names, or .sumocfg paths."""
    names = RESCO_SCENARIOS if spec == "all" else tuple(p for p in spec.split(",") if p)
    if not names:
        raise InvalidInput("no scenario given")
    return [load(n) for n in names]


def check_files(scenario: Scenario) -> None:
    """Clear errors for a missing or corrupt net / route file (before SUMO sees them)."""
    if not scenario.net.is_file():
        raise InvalidInput(f"{scenario.name}: network file not found: {scenario.net}")
    for route in scenario.demand_files or scenario.routes:
        if not route.is_file():
            raise InvalidInput(f"{scenario.name}: route file not found: {route}")
    for route in scenario.routes:
        check_routes_xml(route)


def check_routes_xml(path: Path) -> None:
    """Parse a route file; raise InvalidInput if it is not a well-formed ``<routes>`` file."""
    try:
        for _, element in ET.iterparse(path, events=("start",)):  # noqa: S314 - local file
            if element.tag != "routes":
                raise InvalidInput(f"route file {path} does not start with <routes>")
            break
        for _ in ET.iterparse(path):  # noqa: S314 - local file
            pass
    except ET.ParseError as exc:
        raise InvalidInput(f"route file {path} is not valid XML: {exc}") from exc
