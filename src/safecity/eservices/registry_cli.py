"""``safecity eservices verify | bundle | revoke | suspend | reinstate`` and ``safecity keys``.

::

    safecity eservices verify 'SC1:...'                 # online: database + key directory
    safecity eservices verify qr.txt --bundle b.jwt --offline [--anchor b.jwt.anchor.json]
    safecity eservices bundle -o b.jwt                  # also writes b.jwt.anchor.json
    safecity eservices revoke CERT_ID --reason "..." [--code superseded]  # all copies
    safecity keys rotate [--alg ES256|Ed25519]          # new issuer key; old ones still verify
    safecity keys list

``verify`` prints the verdict (``--json`` for JSON) and exits 0 for VALID, 1 for any other
verdict; bad input is a one-line error with exit code 2. ``--offline`` reads only the
bundle and the trust anchor (default: the bundle signer's public key in the key
directory): no database, no network.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import typer

from safecity.eservices import registry, registry_keys, verification
from safecity.eservices.credentials import KeySet, Verdict
from safecity.eservices.credentials.status_list import REASON_CODES
from safecity.platform.errors import InvalidInput, SafeCityError
from safecity.platform.runtime import build_runtime
from safecity.security import audit
from safecity.settings import get_settings

app = typer.Typer(
    help="E-services: verify, trust bundle, revoke certificates.", no_args_is_help=True
)
keys_app = typer.Typer(help="Signing keys (e-services issuer keys).", no_args_is_help=True)

MAX_INPUT_BYTES = 1_048_576


def _fail(exc: SafeCityError) -> typer.Exit:
    typer.echo(f"error: {exc.detail}", err=True)
    return typer.Exit(exc.exit_code)


def _read_arg(value: str) -> str:
    """The argument itself, or the content of the file it names."""
    path = Path(value)
    if len(value) < 4096 and not value.upper().startswith("SC1:") and path.is_file():
        if path.stat().st_size > MAX_INPUT_BYTES:
            raise InvalidInput(f"{value} is larger than {MAX_INPUT_BYTES} bytes")
        return _read(path)
    return value.strip()


def _read(path: Path) -> str:
    """A text file's content, or a one-line error (no traceback) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None


def _print(verdict: Verdict, as_json: bool) -> None:
    data = verification.verdict_dict(verdict)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    line = f"{data['status']}: {data['reason']}"  # a revocation's reason names its code
    if data["as_of"]:
        line += f" (status as of {data['as_of']})"
    typer.echo(line)
    for key, value in data["claims"].items():
        typer.echo(f"  {key}: {value}")


@app.command()
def verify(
    text: str = typer.Argument(..., help="The QR text / presentation, or a file holding it."),
    bundle: Path | None = typer.Option(None, "--bundle", help="Offline trust bundle file."),
    offline: bool = typer.Option(False, "--offline", help="Use only the bundle (no database)."),
    anchor: Path | None = typer.Option(None, "--anchor", help="Trust anchor JWK Set file."),
    profile: str | None = typer.Option(None, "--profile", help="Purpose profile to enforce."),
    audience: str | None = typer.Option(None, "--audience", help="Expected KB-JWT audience."),
    nonce: str | None = typer.Option(None, "--nonce", help="Expected KB-JWT nonce."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Verify an SC1: QR text or an SD-JWT presentation (exit 0 only when VALID)."""
    try:
        value = _read_arg(text)
        if offline or bundle is not None:
            if bundle is None or not offline:
                raise InvalidInput("offline verification needs both --bundle FILE and --offline")
            verdict = _verify_offline(value, bundle, anchor, profile, audience, nonce)
        else:
            verdict = _verify_online(value, profile, audience, nonce)
    except SafeCityError as exc:
        raise _fail(exc) from None
    _print(verdict, as_json)
    if not verdict.valid:
        raise typer.Exit(1)


def _verify_offline(
    value: str,
    bundle: Path,
    anchor: Path | None,
    profile: str | None,
    audience: str | None,
    nonce: str | None,
) -> Verdict:
    if not bundle.is_file():
        raise InvalidInput(f"bundle file {bundle} does not exist")
    anchor_path = anchor or Path(f"{bundle}.anchor.json")
    if anchor_path.is_file():
        anchors = verification.read_anchors(_read(anchor_path).encode())
    elif anchor is not None:
        raise InvalidInput(f"trust anchor file {anchor} does not exist")
    else:
        anchors = registry_keys.bundle_store(get_settings().effective_key_dir).public_keys()
        if not len(anchors):
            raise InvalidInput("no trust anchor: pass --anchor FILE")
    return verification.verify_offline(
        value,
        bundle=_read(bundle),
        anchors=anchors,
        profile=profile,
        audience=audience,
        nonce=nonce,
    )


def _verify_online(
    value: str, profile: str | None, audience: str | None, nonce: str | None
) -> Verdict:
    runtime = build_runtime()
    try:
        cache = verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)
        return verification.verify_text(
            value, cache=cache, profile=profile, audience=audience, nonce=nonce
        )
    finally:
        runtime.close()


@app.command()
def bundle(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the bundle (JWT)."),
) -> None:
    """Write the signed offline trust bundle (and its trust anchor beside it)."""
    runtime = build_runtime()
    try:
        with runtime.sessions() as session:
            token = registry.trust_bundle(session)
        anchor = registry.trust_anchor_jwks(runtime.settings.effective_key_dir)
    except SafeCityError as exc:
        raise _fail(exc) from None
    finally:
        runtime.close()
    anchor_path = Path(f"{output}.anchor.json")
    try:  # both files or neither: each is written aside, then moved into place
        for path, text in (
            (output, token + "\n"),
            (anchor_path, json.dumps(anchor, indent=2) + "\n"),
        ):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(text, encoding="ascii")
        for path in (output, anchor_path):
            os.replace(path.with_name(path.name + ".tmp"), path)
    except OSError as exc:
        raise _fail(InvalidInput(f"cannot write {exc.filename}: {exc.strerror}")) from None
    typer.echo(f"wrote {output} ({len(token)} bytes) and its trust anchor {anchor_path}")


def _status_change(
    action: str, certificate_id: str, reason: str | None, code: str | None = None
) -> None:
    runtime = build_runtime()
    try:
        with runtime.sessions.begin() as session:
            if action == "revoke":
                row = registry.revoke(
                    session=session,
                    principal=audit.SYSTEM,
                    certificate_id=certificate_id,
                    reason=reason or "",
                    code=code,
                )
            elif action == "suspend":
                row = registry.suspend(
                    session=session,
                    principal=audit.SYSTEM,
                    certificate_id=certificate_id,
                    reason=reason or "",
                )
            else:
                row = registry.reinstate(
                    session=session,
                    principal=audit.SYSTEM,
                    certificate_id=certificate_id,
                    reason=reason,
                )
    except SafeCityError as exc:
        raise _fail(exc) from None
    finally:
        runtime.close()
    code_text = f" [code {row.reason_code}]" if row.reason_code else ""
    typer.echo(f"{row.id}: {row.status}" + (f" ({row.reason})" if row.reason else "") + code_text)


@app.command()
def revoke(
    certificate_id: str = typer.Argument(..., help="Certificate id."),
    reason: str = typer.Option(..., "--reason", help="Why (private: staff only)."),
    code: str = typer.Option(
        "unspecified",
        "--code",
        help="Published reason code: " + ", ".join(REASON_CODES) + ".",
    ),
) -> None:
    """Revoke every batch copy of a certificate (final; audited); verifiers, offline
    too, see the reason code."""
    _status_change("revoke", certificate_id, reason, code)


@app.command()
def suspend(
    certificate_id: str = typer.Argument(..., help="Certificate id."),
    reason: str = typer.Option(..., "--reason", help="Why."),
) -> None:
    """Suspend every batch copy of a certificate (audited)."""
    _status_change("suspend", certificate_id, reason)


@app.command()
def reinstate(
    certificate_id: str = typer.Argument(..., help="Certificate id."),
    reason: str | None = typer.Option(None, "--reason", help="Why."),
) -> None:
    """Lift a suspension (audited)."""
    _status_change("reinstate", certificate_id, reason)


@keys_app.command()
def rotate(
    alg: str | None = typer.Option(None, "--alg", help="ES256 (default) or Ed25519."),
) -> None:
    """Make a new e-services issuer key active; old public keys stay, so certificates
    signed by them still verify (audited)."""
    settings = get_settings()
    try:
        kid = registry.rotate_issuer_key(settings.effective_key_dir, alg=alg)
        runtime = build_runtime(settings)
        try:
            with runtime.sessions.begin() as session:
                audit.record(
                    session,
                    principal=audit.SYSTEM,
                    action="eservices.keys.rotate",
                    target_type="issuer_key",
                    target_id=kid[:64],
                    detail={"via": "cli", "at": datetime.now(UTC).isoformat(timespec="seconds")},
                )
        finally:
            runtime.close()
    except SafeCityError as exc:
        raise _fail(exc) from None
    typer.echo(f"new active e-services issuer key {kid}")


@keys_app.command("list")
def list_keys() -> None:
    """The e-services issuer keys (the active one marked)."""
    store = registry_keys.issuer_store(get_settings().effective_key_dir)
    active = store.active_kid()
    keys: KeySet = store.public_keys()
    if not len(keys):
        typer.echo("no e-services issuer key yet (one is made on first use)")
    for key in keys:
        typer.echo(f"{'*' if key.kid == active else ' '} {key.kid} {key.alg}")


def register(target: typer.Typer) -> None:
    """Add ``verify``, ``bundle``, ``revoke``, ``suspend``, ``reinstate`` to the
    ``safecity eservices`` group (the applications' Typer app)."""
    names = {
        c.name or (c.callback.__name__ if c.callback else "") for c in target.registered_commands
    }
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        if name not in names:
            target.registered_commands.append(command)
