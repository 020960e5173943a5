"""``safecity orgs import | list | tree``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safecity import cli
from safecity.orgs import cli as orgs_cli
from safecity.orgs import service as orgs
from safecity.platform.runtime import Runtime
from tests.conftest import City

pytestmark = pytest.mark.db

CSV = "code,kind,name_zh,name_en,parent\njd,district,嘉定区,Jiading,sh\n"


@pytest.fixture
def use_test_db(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(orgs_cli, "_runtime", lambda: runtime)
    return runtime


def test_import_then_list_and_tree(city: City, use_test_db: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "orgs.csv"
    path.write_text(CSV, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(cli.app, ["orgs", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert "imported 1 organisation(s) from orgs.csv: 1 created" in result.output
    with use_test_db.sessions() as s:
        assert orgs.get_by_code(session=s, code="jd").name_en == "Jiading"

    listed = runner.invoke(cli.app, ["orgs", "list", "--kind", "district", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["code"] for r in rows] == ["hp", "jd", "pd"]

    table = runner.invoke(cli.app, ["orgs", "list"])
    assert "sanitation" in table.output

    tree = runner.invoke(cli.app, ["orgs", "tree"])
    assert tree.exit_code == 0, tree.output
    lines = tree.output.splitlines()
    city_line = next(i for i, line in enumerate(lines) if "上海市" in line)
    station_line = next(i for i, line in enumerate(lines) if "hp-s1" in line)
    assert station_line > city_line
    assert "[station]" in lines[station_line]  # brackets printed as text, not markup


def test_dry_run_writes_nothing(city: City, use_test_db: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "orgs.csv"
    path.write_text(CSV, encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["orgs", "import", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    assert "would import 1" in result.output
    with use_test_db.sessions() as s:
        assert orgs.list_orgs(session=s, search="jd")[1] == 0


def test_a_bad_file_is_one_line_on_stderr_and_a_failing_exit(
    city: City,
    use_test_db: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(CSV + "jd-s1,station,站,S,nowhere\n", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["safecity", "orgs", "import", str(path)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("error: bad.csv: 1 problem, nothing imported: bad.csv line 3")
    with use_test_db.sessions() as s:
        assert orgs.list_orgs(session=s, search="jd")[1] == 0


def test_a_missing_file_is_an_error(
    use_test_db: Runtime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["safecity", "orgs", "import", "/nonexistent/orgs.csv"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code != 0
    assert "no such file" in capsys.readouterr().err


def test_large_imports_report_progress(
    city: City, use_test_db: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    real = orgs_cli.importer.import_orgs

    def spy(**kwargs):  # type: ignore[no-untyped-def]
        progress = kwargs["progress"]

        def record(done: int, total: int) -> None:
            seen.append((done, total))
            progress(done, total)

        kwargs["progress"] = record
        return real(**kwargs)

    monkeypatch.setattr(orgs_cli.importer, "import_orgs", spy)
    monkeypatch.setattr(orgs_cli, "PROGRESS_FROM", 2)
    rows = "".join(f"d{i},department,科{i},Unit {i},sh\n" for i in range(5))
    path = tmp_path / "many.csv"
    path.write_text("code,kind,name_zh,name_en,parent\n" + rows, encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["orgs", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert seen[-1] == (5, 5)
