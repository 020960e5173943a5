"""Offline verification from a signed bundle, and the CLI: verify, bundle, revoke, keys."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from safecity.cli import app as cli_app
from safecity.eservices import registry, registry_cli, verification
from safecity.eservices.credentials import KeySet, SigningKey, VerdictStatus
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime
from tests.eservices.registry_fixtures import NOW, People, issue, people, principal

__all__ = ["people"]


def _qr(runtime: Runtime, people: People, cert_id: str, now: Any = NOW) -> str:
    with runtime.sessions.begin() as s:
        return registry.certificate_qr(
            session=s, principal=principal(s, people.citizen), certificate_id=cert_id, now=now
        )


def _bundle(runtime: Runtime, now: Any = NOW) -> tuple[str, KeySet]:
    with runtime.sessions() as s:
        token = registry.trust_bundle(s, now=now)
    anchor = registry.trust_anchor_jwks(runtime.settings.effective_key_dir)
    return token, KeySet.from_jwks(anchor)


def _revoke(runtime: Runtime, people: People, cert_id: str, reason: str) -> None:
    with runtime.sessions.begin() as s:
        registry.revoke(
            session=s,
            principal=principal(s, people.supervisor),
            certificate_id=cert_id,
            reason=reason,
        )


def test_offline_valid_revoked_and_stale(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    token, anchors = _bundle(runtime)
    later = NOW + timedelta(seconds=20)
    ok = verification.verify_offline(qr, bundle=token, anchors=anchors, now=later)
    assert ok.status is VerdictStatus.VALID
    # a QR minted 25 h later, checked against the day-old snapshot: STATUS-STALE with as_of
    fresh_qr = _qr(runtime, people, cert.id, now=NOW + timedelta(hours=25))
    stale = verification.verify_offline(
        fresh_qr, bundle=token, anchors=anchors, now=NOW + timedelta(hours=25, seconds=5)
    )
    assert stale.status is VerdictStatus.STATUS_STALE
    assert stale.as_of == NOW
    _revoke(runtime, people, cert.id, "withdrawn")
    new_token, _ = _bundle(runtime, now=NOW + timedelta(seconds=10))
    gone = verification.verify_offline(qr, bundle=new_token, anchors=anchors, now=later)
    assert gone.status is VerdictStatus.REVOKED


def test_offline_refuses_a_bundle_from_another_signer(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    token, _ = _bundle(runtime)
    stranger = KeySet([SigningKey.generate("Ed25519").public])
    with pytest.raises(InvalidInput, match="trust bundle rejected"):
        verification.verify_offline(qr, bundle=token, anchors=stranger, now=NOW)


def test_offline_fails_closed_on_an_undecodable_snapshot(runtime: Runtime, people: People) -> None:
    from safecity.eservices import registry_keys
    from safecity.eservices.credentials.jose import parse_unverified, sign_jwt

    cert = issue(runtime, people)
    qr = _qr(runtime, people, cert.id)
    token, anchors = _bundle(runtime)
    payload = parse_unverified(token).payload
    payload["status_lists"][0]["lst"] = "not-zlib"
    signer = registry_keys.bundle_signer(runtime.settings.effective_key_dir)
    broken = sign_jwt(payload, signer, typ="safecity-trust-bundle+jwt")
    verdict = verification.verify_offline(qr, bundle=broken, anchors=anchors, now=NOW)
    assert verdict.status is VerdictStatus.INVALID
    assert verdict.code == "status-undecodable"


@pytest.fixture
def cli_runtime(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setattr(registry_cli, "build_runtime", lambda *a, **k: runtime)
    monkeypatch.setattr(registry_cli, "get_settings", lambda: runtime.settings)
    return runtime


def test_cli_verify_online_offline_and_revoke(
    cli_runtime: Runtime, people: People, tmp_path: Path
) -> None:
    runtime = cli_runtime
    cert = issue(runtime, people)
    from safecity.platform.db import utcnow

    qr = _qr(runtime, people, cert.id, now=utcnow())
    runner = CliRunner()
    online = runner.invoke(cli_app, ["eservices", "verify", qr])
    assert online.exit_code == 0, online.output
    assert online.output.startswith("VALID")
    bundle_file = tmp_path / "bundle.jwt"
    made = runner.invoke(cli_app, ["eservices", "bundle", "-o", str(bundle_file)])
    assert made.exit_code == 0, made.output
    assert Path(f"{bundle_file}.anchor.json").is_file()
    qr_file = tmp_path / "qr.txt"
    qr_file.write_text(qr + "\n")
    offline = runner.invoke(
        cli_app,
        ["eservices", "verify", str(qr_file), "--bundle", str(bundle_file), "--offline", "--json"],
    )
    assert offline.exit_code == 0, offline.output
    assert json.loads(offline.output)["status"] == "VALID"

    bad_code = runner.invoke(
        cli_app, ["eservices", "revoke", cert.id, "--reason", "lost phone", "--code", "oops"]
    )
    assert bad_code.exit_code == 2
    assert bad_code.output.strip().startswith("error: unknown reason code")
    revoked = runner.invoke(
        cli_app,
        ["eservices", "revoke", cert.id, "--reason", "lost phone", "--code", "holder_request"],
    )
    assert revoked.exit_code == 0, revoked.output
    assert "revoked (lost phone) [code holder_request]" in revoked.output
    after = runner.invoke(cli_app, ["eservices", "verify", qr])
    assert after.exit_code == 1
    assert after.output.startswith("REVOKED: revoked by the issuer (holder_request)")
    assert "lost phone" not in after.output  # the free text stays private
    runner.invoke(cli_app, ["eservices", "bundle", "-o", str(bundle_file)])
    off_after = runner.invoke(
        cli_app, ["eservices", "verify", qr, "--bundle", str(bundle_file), "--offline"]
    )
    assert off_after.exit_code == 1
    assert off_after.output.startswith("REVOKED: revoked by the issuer (holder_request)")
    off_json = runner.invoke(
        cli_app, ["eservices", "verify", qr, "--bundle", str(bundle_file), "--offline", "--json"]
    )
    assert json.loads(off_json.output)["reason_code"] == "holder_request"


def test_cli_bad_input_is_one_line_with_exit_2(cli_runtime: Runtime, tmp_path: Path) -> None:
    runner = CliRunner()
    no_bundle = runner.invoke(cli_app, ["eservices", "verify", "SC1:X", "--offline"])
    assert no_bundle.exit_code == 2
    assert no_bundle.output.strip().startswith("error: offline verification needs")
    missing = runner.invoke(
        cli_app,
        ["eservices", "verify", "SC1:X", "--bundle", str(tmp_path / "nope"), "--offline"],
    )
    assert missing.exit_code == 2
    unknown = runner.invoke(cli_app, ["eservices", "revoke", "nosuchid", "--reason", "x"])
    assert unknown.exit_code != 0
    assert "error: certificate not found" in unknown.output
    garbage = runner.invoke(cli_app, ["eservices", "verify", "hello"])
    assert garbage.exit_code == 1
    assert garbage.output.startswith("INVALID")


def test_cli_keys_rotate_keeps_old_keys(cli_runtime: Runtime, people: People) -> None:
    runtime = cli_runtime
    cert = issue(runtime, people)
    runner = CliRunner()
    rotated = runner.invoke(cli_app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    listed = runner.invoke(cli_app, ["keys", "list"])
    lines = [line for line in listed.output.splitlines() if line.strip()]
    assert len(lines) == 2
    assert any(line.startswith(f"  {cert.kid}") for line in lines)  # old, not active
    assert any(line.startswith("* ") for line in lines)
    bad = runner.invoke(cli_app, ["keys", "rotate", "--alg", "RS256"])
    assert bad.exit_code == 2


def test_the_public_bundle_is_reused_until_a_list_changes(runtime: Runtime, people: People) -> None:
    cert = issue(runtime, people)
    first, _ = _bundle(runtime)
    assert _bundle(runtime, now=NOW + timedelta(seconds=30))[0] == first  # same lists, < 1 min
    assert _bundle(runtime, now=NOW + timedelta(minutes=2))[0] != first  # re-signed, fresh iat
    qr = _qr(runtime, people, cert.id, now=NOW + timedelta(minutes=2))  # shown before
    _revoke(runtime, people, cert.id, "obtained by mistake")
    revoked, anchors = _bundle(runtime, now=NOW + timedelta(minutes=2, seconds=10))
    verdict = verification.verify_offline(
        qr, bundle=revoked, anchors=anchors, now=NOW + timedelta(minutes=2, seconds=20)
    )
    assert verdict.status is VerdictStatus.REVOKED  # the revocation is in at once
