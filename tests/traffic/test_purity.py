"""Controllers see detector readings only: none may import TraCI/libsumo (or sumolib)."""

from __future__ import annotations

import ast
from pathlib import Path

import safecity.traffic.controllers as controllers_pkg

FORBIDDEN = {"traci", "libsumo", "sumo", "sumolib"}
FORBIDDEN_MODULES = {
    "safecity.traffic.sim",
    "safecity.traffic.sumo_env",
    "safecity.traffic.network",
}


def violations(source: str) -> list[str]:
    """Imports of the simulator (directly, via importlib or __import__) in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("__import__", "import_module"):
                found.append(f"dynamic import at line {node.lineno}")
        for name in names:
            if name.split(".")[0] in FORBIDDEN or name in FORBIDDEN_MODULES:
                found.append(f"import {name} at line {node.lineno}")
    return found


def test_scanner_catches_simulator_imports() -> None:
    assert violations("import traci\n")
    assert violations("from libsumo import trafficlight\n")
    assert violations("import importlib\nimportlib.import_module('traci')\n")
    assert violations("from safecity.traffic.sim import run_episode\n")
    assert not violations("from safecity.traffic.observation import Observation\n")


def test_no_controller_module_imports_the_simulator() -> None:
    folder = Path(controllers_pkg.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 4
    bad = {f.name: v for f in files if (v := violations(f.read_text(encoding="utf-8")))}
    assert bad == {}
