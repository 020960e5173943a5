"""``safecity eservices catalogue | apply | list | act | stats | sim``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safecity import cli
from safecity.eservices import cli as eservices_cli
from safecity.eservices import sim
from safecity.eservices.models import Application
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.runtime import Runtime
from tests.conftest import Actor, City
from tests.eservices.applications_support import PDF_BYTES, People, people

pytestmark = pytest.mark.db


@pytest.fixture
def use_test_db(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(eservices_cli, "_runtime", lambda: runtime)
    return runtime


@pytest.fixture
def folks(runtime: Runtime, city: City, make_actor: Callable[..., Actor]) -> People:
    return people(runtime, city, make_actor)


def test_catalogue_lists_every_item() -> None:
    result = CliRunner().invoke(cli.app, ["eservices", "catalogue", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert len(rows) == 11
    ncr = next(r for r in rows if r["code"] == "no-criminal-record")
    assert ncr["deadline_workdays"] == 3
    assert ncr["pulled"] >= 1
    table = CliRunner().invoke(cli.app, ["eservices", "catalogue"])
    assert "materials pulled overall" in table.output


def test_apply_list_act_and_stats(use_test_db: Runtime, folks: People, tmp_path: Path) -> None:
    answers = tmp_path / "answers.json"
    answers.write_text(
        json.dumps({"apply_at": "household", "purpose": "visa", "declaration": True}), "utf-8"
    )
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(PDF_BYTES)
    runner = CliRunner()
    applied = runner.invoke(
        cli.app,
        [
            "eservices",
            "apply",
            "no-criminal-record",
            "--as",
            folks.citizen.username,
            "--answers",
            str(answers),
            "--attach",
            f"agent-authorisation={letter}",
            "--key",
            "cli-key-0001",
        ],
    )
    assert applied.exit_code == 0, applied.output
    assert " submitted id=" in applied.output
    app_id = applied.output.split("id=")[1].split()[0]

    mine = runner.invoke(cli.app, ["eservices", "list", "--as", folks.citizen.username, "--json"])
    assert [json.loads(line)["id"] for line in mine.output.splitlines()] == [app_id]
    queue = runner.invoke(cli.app, ["eservices", "list", "--as", folks.police.username, "--json"])
    assert queue.exit_code == 0, queue.output
    assert [json.loads(line)["item"] for line in queue.output.splitlines()] == [
        "no-criminal-record"
    ]
    table = runner.invoke(cli.app, ["eservices", "list", "--as", folks.police.username])
    assert table.exit_code == 0
    assert "reference" in table.output
    for action in ("accept", "approve", "issue"):
        step = runner.invoke(
            cli.app, ["eservices", "act", app_id, action, "--as", folks.police.username]
        )
        assert step.exit_code == 0, step.output
    assert "certificate" in step.output
    with use_test_db.sessions() as s:
        row = s.get(Application, app_id)
        assert row is not None
        assert row.state == "issued"

    stats = runner.invoke(cli.app, ["eservices", "stats", "--json"])
    assert stats.exit_code == 0, stats.output
    figures = json.loads(stats.output)
    assert figures["items"][0]["item_code"] == "no-criminal-record"
    assert figures["materials_uploaded"] == 1
    assert figures["share_pulled"] > 0.5
    table = runner.invoke(cli.app, ["eservices", "stats"])
    assert "materials pulled instead of uploaded" in table.output


def test_bad_input_fails_whole(use_test_db: Runtime, folks: People, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id_number": "123"}), "utf-8")
    result = runner.invoke(
        cli.app,
        [
            "eservices",
            "apply",
            "no-criminal-record",
            "--as",
            folks.citizen.username,
            "--answers",
            str(bad),
        ],
    )
    assert isinstance(result.exception, InvalidInput)
    assert "id_number" in result.exception.detail
    with use_test_db.sessions() as s:  # nothing half-written
        assert s.query(Application).count() == 0
    nobody = runner.invoke(cli.app, ["eservices", "list", "--as", "nobody"])
    assert isinstance(nobody.exception, NotFound)
    broken = tmp_path / "broken.json"
    broken.write_text("{", "utf-8")
    result = runner.invoke(
        cli.app,
        [
            "eservices",
            "apply",
            "household-proof",
            "--as",
            folks.citizen.username,
            "--answers",
            str(broken),
        ],
    )
    assert isinstance(result.exception, InvalidInput)
    result = runner.invoke(
        cli.app,
        ["eservices", "apply", "household-proof", "--as", folks.citizen.username, "--attach", "x"],
    )
    assert isinstance(result.exception, InvalidInput)


def test_simulation_figures() -> None:
    result = sim.run_isolated(applications=12, seed=5, arrival_workdays=20)
    assert result.applications == 13  # with the single-window demo case
    assert result.single_window_demo_workdays is not None
    assert result.single_window_demo_workdays <= 7
    assert 0 < result.share_pulled < 1
    assert sum(f.count for f in result.items) == 13
    for f in result.items:
        if f.median_workdays is not None:
            assert f.p90_workdays is not None
            assert f.p90_workdays >= f.median_workdays
