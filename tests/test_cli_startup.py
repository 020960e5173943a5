"""The ``safecity`` command imports only the command group it runs (fast restarts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("safecity.crowd.cli", "lightgbm", "safecity.eservices.registry", "fpdf")


def _loaded_after(argv: list[str]) -> tuple[dict[str, bool], list[str]]:
    """Which heavy modules importing the CLI loaded, and the groups it registered."""
    probe = (
        "import json, sys\n"
        f"sys.argv = {argv!r}\n"
        "import safecity.cli as cli\n"
        f"print(json.dumps({{m: m in sys.modules for m in {list(HEAVY)!r}}}))\n"
        "print(json.dumps(sorted(g.name for g in cli.app.registered_groups)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    loaded: dict[str, bool] = json.loads(out[0])
    groups: list[str] = json.loads(out[1])
    return loaded, groups


@pytest.mark.parametrize(
    ("argv", "groups"),
    [
        (["safecity", "jobs", "worker"], ["jobs"]),
        (["safecity", "migrate"], []),
    ],
)
def test_only_the_named_group_is_imported(argv: list[str], groups: list[str]) -> None:
    loaded, registered = _loaded_after(argv)
    assert registered == groups
    assert not any(loaded.values()), loaded


def test_help_and_other_callers_get_every_group() -> None:
    loaded, registered = _loaded_after(["safecity", "--help"])
    assert {"jobs", "crowd", "eservices", "keys", "traffic"} <= set(registered)
    assert loaded["safecity.crowd.cli"]
