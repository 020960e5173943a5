"""``safecity traffic bench`` on the tiny net: progress, JSON and Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from safecity import cli
from tests.traffic.conftest import Tiny


def test_bench_cli_on_the_tiny_net(tmp_path: Path, tiny: Tiny) -> None:
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        cli.app,
        [
            "traffic",
            "bench",
            "--scenario",
            str(tiny.cfg),
            "--controller",
            "fixed,max-pressure",
            "--seeds",
            "2",
            "--jobs",
            "1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    cells = {(c["scenario"], c["controller"]): c for c in data["cells"]}
    assert set(cells) == {("tiny", "fixed"), ("tiny", "max-pressure")}
    for cell in cells.values():
        assert cell["episodes"] == 2
        assert cell["seeds"] == [1, 2]
        assert cell["delay_mean"] > 0
        assert cell["throughput_mean"] > 0
        assert cell["gridlocked"] == 0
    assert len(data["episodes"]) == 4
    assert data["meta"]["sumo_version"] == "1.28.0"
    table = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| tiny | max-pressure | 1 | 2 |" in table


def test_bench_cli_bad_input(tmp_path: Path, tiny: Tiny) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli.app, ["traffic", "bench", "--scenario", str(tmp_path / "x.sumocfg")])
    assert bad.exit_code != 0
    assert "not found" in str(bad.exception)
    bad = runner.invoke(
        cli.app, ["traffic", "bench", "--scenario", str(tiny.cfg), "--controller", "oracle"]
    )
    assert bad.exit_code != 0
    assert "unknown controller" in str(bad.exception)
