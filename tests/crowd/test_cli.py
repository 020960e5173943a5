"""``safecity crowd train | forecast | backtest``: happy path and one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safecity import cli
from safecity.crowd.datasets import synthetic_counts, write_counts_csv


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["safecity", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    code = info.value.code
    return int(code) if isinstance(code, int) else 1, capsys.readouterr().err


def test_train_then_forecast(tmp_path: Path) -> None:
    counts = synthetic_counts(sites=("bund", "yuyuan"), days=30)
    path = tmp_path / "counts.csv"
    write_counts_csv(counts, path)
    model = tmp_path / "model.json"
    runner = CliRunner()
    trained = runner.invoke(
        cli.app,
        [
            "crowd",
            "train",
            str(path),
            "-m",
            str(model),
            "--rounds",
            "30",
            "--calibration-days",
            "7",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "trained 2 hotspot(s)" in trained.output
    result = runner.invoke(cli.app, ["crowd", "forecast", str(path), "-m", str(model), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 6
    assert {r["site"] for r in rows} == {"bund", "yuyuan"}
    assert all(r["lower"] <= r["point"] <= r["upper"] for r in rows)
    table = runner.invoke(cli.app, ["crowd", "forecast", str(path), "-m", str(model)])
    assert table.exit_code == 0
    assert "bund" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crowd", "backtest", "--dataset", "atlantis"], "error: unknown dataset 'atlantis'"),
        (
            ["crowd", "forecast", "/nonexistent.csv", "-m", "/nonexistent.json"],
            "error: no such model file",
        ),
        (
            ["crowd", "backtest", "--dataset", "melbourne-2021", "--horizons", "0"],
            "error: horizons",
        ),
    ],
)
def test_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code, err = run_main(monkeypatch, capsys, *args)
    assert code != 0
    assert err.strip().startswith(message)
    assert len(err.strip().splitlines()) == 1


def test_bad_counts_file_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("hotspot,timestamp,count\nbund,2026-10-01T10:00:00+08:00,-3\n", "utf-8")
    code, err = run_main(
        monkeypatch, capsys, "crowd", "train", str(path), "-m", str(tmp_path / "m.json")
    )
    assert code == 2
    assert err.strip() == "error: line 2: negative count '-3'"
