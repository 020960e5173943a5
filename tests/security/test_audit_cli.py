"""``safecity audit verify`` and ``safecity audit checkpoint``."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from safecity.cli import app as cli_app
from safecity.cli import main
from safecity.platform.runtime import Runtime
from safecity.security import audit, audit_cli, keys
from safecity.settings import Settings

from .audit_support import delete_seqs, rows, write_records

pytestmark = pytest.mark.db


@pytest.fixture
def cli_runtime(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(audit_cli, "build_runtime", lambda: runtime)
    return runtime


def test_verify_ok_prints_the_count_and_is_audited(cli_runtime: Runtime) -> None:
    write_records(cli_runtime, 3)
    result = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "OK: 3 audit records" in result.output
    last = rows(cli_runtime.engine)[-1]
    assert (last.action, last.actor_id, last.detail["via"]) == ("audit.verify", "system", "cli")


def test_verify_json(cli_runtime: Runtime) -> None:
    write_records(cli_runtime, 2)
    result = CliRunner().invoke(cli_app, ["audit", "verify", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    assert report["records"] == 2


def test_verify_reports_the_first_bad_link_and_fails(cli_runtime: Runtime) -> None:
    write_records(cli_runtime, 5)
    delete_seqs(cli_runtime.engine, 2)
    result = CliRunner().invoke(cli_app, ["audit", "verify"])
    assert result.exit_code == 1
    assert "FAILED at seq 2 (gap)" in result.output


def test_checkpoint_command_signs_the_head(cli_runtime: Runtime, settings: Settings) -> None:
    runner = CliRunner()
    empty = runner.invoke(cli_app, ["audit", "checkpoint"])
    assert empty.exit_code == 0
    assert "empty" in empty.output
    write_records(cli_runtime, 4)
    result = runner.invoke(cli_app, ["audit", "checkpoint"])
    assert result.exit_code == 0, result.output
    assert "seq 4" in result.output
    line = json.loads(audit.checkpoint_path(settings).read_text().splitlines()[-1])
    assert line["seq"] == 4


@pytest.mark.usefixtures("cli_runtime")
def test_entry_point_exit_codes(
    runtime: Runtime,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Through ``safecity.cli.main`` (the console script): 1 on a bad chain, 3 and one
    line on stderr without the key."""
    write_records(runtime, 3)
    delete_seqs(runtime.engine, 3)  # a truncated tail: the head still says 3
    monkeypatch.setattr(sys, "argv", ["safecity", "audit", "verify"])
    with pytest.raises(SystemExit) as failed:
        main()
    assert failed.value.code == 1
    assert "FAILED at seq 3 (truncated)" in capsys.readouterr().err
    (settings.effective_key_dir / keys.HMAC_KEY_FILE).unlink()
    keys.clear_cache()
    with pytest.raises(SystemExit) as missing:
        main()
    assert missing.value.code == 3
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith("error: secret key file")
    assert "is missing" in err
