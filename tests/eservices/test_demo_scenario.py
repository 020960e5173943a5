"""`safecity demo`: the citizen's no-criminal-record certificate is issued, shown as a QR and
verified offline (VALID); a second one is revoked (REVOKED); reruns add nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select
from typer.testing import CliRunner

from safecity.cli import app as cli_app
from safecity.demo import prepare
from safecity.eservices import demo as demo_module
from safecity.eservices import registry, verification
from safecity.eservices.demo import (
    ANCHOR_FILE,
    BUNDLE_FILE,
    REVOKE_REASON,
    DemoOutcome,
    print_outcome,
    simulate_no_criminal_record,
)
from safecity.eservices.models import Application
from safecity.eservices.registry_models import Certificate
from safecity.platform.db import make_engine, make_session_factory
from safecity.platform.runtime import Runtime
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.settings import Settings


@pytest.fixture
def demo_runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(var_dir=tmp_path / "var", key_dir=tmp_path / "keys", log_json=False)
    engine = make_engine(settings.effective_database_url)
    runtime = Runtime(settings=settings, engine=engine, sessions=make_session_factory(engine))
    yield runtime
    runtime.close()


def _counts(runtime: Runtime) -> tuple[int, int]:
    with runtime.sessions() as s:
        certs = s.scalar(select(func.count()).select_from(Certificate)) or 0
        apps = s.scalar(
            select(func.count())
            .select_from(Application)
            .where(Application.item_code == "no-criminal-record")
        )
        return certs, apps or 0


def test_demo_issues_verifies_offline_and_revokes(
    demo_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed: list[DemoOutcome] = []
    monkeypatch.setattr(demo_module, "print_outcome", lambda o, _console: printed.append(o))
    prepare(demo_runtime)
    assert _counts(demo_runtime) == (2, 2)
    first = printed[0]  # the first run: the second QR read VALID, then REVOKED
    assert (first.shown.verdict, first.revoked.verdict_before) == ("VALID", "VALID")
    assert first.revoked.verdict == "REVOKED"
    assert first.shown.verdict_before is None
    outcome = simulate_no_criminal_record(demo_runtime)  # what prepare() ran: a rerun
    assert outcome.revoked.verdict_before is None
    assert outcome.shown.reference == first.shown.reference
    out = demo_runtime.settings.var_dir / "demo"
    assert outcome.bundle_path == out / BUNDLE_FILE
    assert outcome.anchor_path == out / ANCHOR_FILE

    # the verifier's step reads the files alone: no database is involved
    bundle = outcome.bundle_path.read_text(encoding="ascii")
    anchors = verification.read_anchors(outcome.anchor_path.read_bytes())
    shown_qr = outcome.shown.qr_path.read_text(encoding="ascii").strip()
    assert shown_qr.startswith("SC1:")
    assert len(shown_qr) <= 400
    verdict = verification.verify_offline(shown_qr, bundle=bundle, anchors=anchors)
    assert str(verdict.status) == "VALID"
    assert set(verdict.claims) <= {"family_name", "given_name", "id_last4"}  # hotel profile
    assert len(verdict.claims["id_last4"]) == 4
    assert outcome.shown.verdict == "VALID"
    assert outcome.shown.state == "active"

    assert outcome.revoked.state == "revoked"
    assert outcome.revoked.verdict == "REVOKED"
    assert outcome.revoked.registry_reason == REVOKE_REASON
    assert outcome.shown.certificate_number == outcome.shown.reference
    revoked_qr = outcome.revoked.qr_path.read_text(encoding="ascii").strip()
    again = verification.verify_offline(
        revoked_qr, bundle=bundle, anchors=anchors, now=outcome.revoked.shown_at
    )
    assert str(again.status) == "REVOKED"

    # the citizen sees both, the first still issued and valid
    with demo_runtime.sessions.begin() as s:
        user = s.scalars(select(User).where(User.username == "citizen")).one()
        citizen = principal_for(session=s, user=user, auth_method="session")
        mine = {c.id: c for c in registry.my_certificates(session=s, principal=citizen)}
    assert mine[outcome.shown.certificate_id].status == "active"
    assert mine[outcome.revoked.certificate_id].status == "revoked"
    assert mine[outcome.shown.certificate_id].item_code == "no-criminal-record"

    # a second `safecity demo` run: no failure, no third certificate or application
    prepare(demo_runtime)
    assert _counts(demo_runtime) == (2, 2)
    state = json.loads((out / "eservices-demo.json").read_text(encoding="utf-8"))
    assert state["revoked_qr_shown_at"]


def test_printed_offline_command_gives_the_verdicts(demo_runtime: Runtime) -> None:
    prepare(demo_runtime)
    outcome: DemoOutcome = simulate_no_criminal_record(demo_runtime)
    command = outcome.verify_command(outcome.shown.qr_path).split()
    assert command[:3] == ["safecity", "eservices", "verify"]
    runner = CliRunner()
    result = runner.invoke(cli_app, command[1:])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("VALID")
    # the revoked QR (shown minutes ago at most in this test) reads REVOKED, exit 1
    revoked = runner.invoke(cli_app, outcome.verify_command(outcome.revoked.qr_path).split()[1:])
    assert revoked.exit_code == 1
    assert revoked.output.startswith("REVOKED")


def test_printout_has_the_commands_and_flags_an_expired_revoked_qr(
    demo_runtime: Runtime,
) -> None:
    prepare(demo_runtime)
    outcome = simulate_no_criminal_record(demo_runtime)
    console = Console(record=True, width=400)
    print_outcome(outcome, console)
    text = console.export_text()
    assert outcome.shown.reference in text
    assert outcome.verify_command(outcome.shown.qr_path) in text
    assert outcome.verify_command(outcome.revoked.qr_path) in text
    old = replace(outcome.revoked, shown_at=outcome.revoked.shown_at - timedelta(minutes=6))
    console = Console(record=True, width=400)
    print_outcome(replace(outcome, revoked=old), console)
    text = console.export_text()
    assert outcome.verify_command(outcome.revoked.qr_path) not in text
    assert "has expired" in text
