"""``safecity sensors import | list | show | generate``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safecity import cli
from safecity.platform.runtime import Runtime
from safecity.sensing import cli as sensors_cli
from safecity.sensing.models import Sensor
from tests.conftest import City
from tests.sensing.test_registry import GCJ, WGS, give_stations_areas

pytestmark = pytest.mark.db


@pytest.fixture
def use_test_db(runtime: Runtime, city: City, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    give_stations_areas(runtime, city)
    monkeypatch.setattr(sensors_cli, "_runtime", lambda: runtime)
    return runtime


def test_import_list_show(use_test_db: Runtime, city: City, tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text(
        f"id,type,lng,lat,unit\nc-1,door,{GCJ[0]},{GCJ[1]},1201\nc-2,smoke,121.42,31.2,\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(cli.app, ["sensors", "import", str(path), "--crs", "gcj02"])
    assert result.exit_code == 0, result.output
    assert "imported 2 sensor(s) from s.csv (gcj02): 2 created, 0 updated, 0 skipped" in (
        result.output
    )
    with use_test_db.sessions() as s:
        sensor = s.get(Sensor, "c-1")
        assert sensor is not None
        assert sensor.lng == pytest.approx(WGS[0], abs=1e-7)

    listed = runner.invoke(cli.app, ["sensors", "list", "--json", "--type", "door"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == ["c-1"]
    by_org = runner.invoke(cli.app, ["sensors", "list", "--org", "hp-s1"])
    assert by_org.exit_code == 0
    assert "c-2" in by_org.output
    assert "c-1" not in by_org.output

    shown = runner.invoke(cli.app, ["sensors", "show", "c-1"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["station_code"] == "pd-s1"
    assert data["type"] == "door"


def test_generate_writes_a_registry(tmp_path: Path) -> None:
    out = tmp_path / "g.geojson"
    result = CliRunner().invoke(
        cli.app, ["sensors", "generate", "200", "--out", str(out), "--crs", "bd09"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert len(data["features"]) == 200


@pytest.mark.parametrize(
    ("content", "args", "expected"),
    [
        (
            "id,type,lng,lat\nb-1,dor,121.42,31.2\n",
            ["--crs", "wgs84"],
            "line 2: unknown sensor type",
        ),
        ("id,type,lng,lat\n", ["--crs", "wgs-84"], "unknown coordinate system 'wgs-84'"),
        ("id,type\n", ["--crs", "wgs84"], "line 1: missing column(s) lng, lat"),
    ],
)
def test_errors_are_one_line_on_stderr(
    use_test_db: Runtime, tmp_path: Path, content: str, args: list[str], expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["sensors", "import", str(path), *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert expected in str(getattr(result.exception, "detail", result.exception))


def test_main_prints_one_line_and_exits_non_zero(
    use_test_db: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,type,lng,lat\nb-1,door,abc,31.2\nb-2,door,121.4,31.2\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["safecity", "sensors", "import", str(path), "--crs", "gcj02"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: bad.csv: 1 problem, nothing imported: bad.csv line 2: lng")
    with use_test_db.sessions() as s:
        assert s.get(Sensor, "b-2") is None


def test_a_missing_file_is_an_error(
    use_test_db: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["safecity", "sensors", "import", "/nonexistent/s.csv", "--crs", "wgs84"]
    )
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    assert "no such file" in capsys.readouterr().err


def test_show_unknown_sensor_is_an_error(
    use_test_db: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["safecity", "sensors", "show", "nope"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    assert capsys.readouterr().err.strip() == "error: sensor not found"
