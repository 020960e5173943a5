"""``safecity rules check`` and ``safecity rules replay``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from safecity.cli import app
from safecity.sensing.rules_schema import SHIPPED_DIR
from tests.sensing.rule_helpers import ev

runner = CliRunner()


def _jsonl(path: Path, events: list[dict[str, Any]], extra: str = "") -> Path:
    lines = [
        json.dumps({**e, "time": e["time"].isoformat()})
        if isinstance(e["time"], datetime)
        else json.dumps(e)
        for e in events
    ]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def test_check_shipped_file_ok() -> None:
    result = runner.invoke(app, ["rules", "check", str(SHIPPED_DIR / "starter.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: 23 rules")


def test_check_bad_file_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nrules:\n- id: x\n  kind: count\n  event: intrusion.detected\n"
        "  count: 1\n  within: 5m\n  alert: {title: t, category: c}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["rules", "check", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "rules[0] 'x': count:" in result.stderr
    missing = runner.invoke(app, ["rules", "check", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "no such rule file" in missing.stderr


def test_replay_prints_alerts(tmp_path: Path) -> None:
    far = {"lat": 31.30, "lng": 121.50}  # away from the shipped protected site
    events = [ev("intrusion.detected", t, zone_id="z9", armed=True, **far) for t in (0, 60, 120)]
    events.append(ev("throw.detected", 130, building_id="b7", object="bottle", confidence=0.9))
    events.append(dict(events[0]))  # a duplicate
    path = _jsonl(tmp_path / "events.jsonl", events, extra="not json\n")
    result = runner.invoke(app, ["rules", "replay", "shipped", str(path), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [m["rule_id"] for m in out["matches"]] == ["repeated-intrusion", "throw-from-height"]
    assert out["stats"]["duplicates"] == 1
    assert out["stats"]["unreadable_lines"] == 1
    table = runner.invoke(
        app, ["rules", "replay", str(SHIPPED_DIR), str(path)], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    assert "repeated-intrusion" in table.stdout
    assert "2 matches" in table.stdout


def test_replay_until_fires_absences(tmp_path: Path) -> None:
    smoke = ev("smoke.detected", 0, zone_id="z-1", obscuration=20, unit="%/m")
    path = _jsonl(tmp_path / "smoke.jsonl", [smoke])
    quiet = runner.invoke(app, ["rules", "replay", "shipped", str(path), "--json"])
    assert [m["rule_id"] for m in json.loads(quiet.stdout)["matches"]] == ["smoke-dense"]
    result = runner.invoke(
        app,
        ["rules", "replay", "shipped", str(path), "--json", "--until", "2026-11-26T03:00:00Z"],
    )
    assert result.exit_code == 0, result.output
    _dense, silent = json.loads(result.stdout)["matches"]
    assert (silent["rule_id"], silent["key"]) == ("fire-alarm-silent", "z-1")
    bad = runner.invoke(app, ["rules", "replay", "shipped", str(path), "--until", "soon"])
    assert bad.exit_code == 2
    assert "--until" in bad.stderr
