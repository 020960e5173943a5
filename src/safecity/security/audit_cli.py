"""``safecity audit``: verify the chain, sign a checkpoint of its head now.

``safecity audit verify`` prints ``OK: N audit records...`` and exits 0, or prints the
first bad link (``FAILED at seq S (code): why``) and exits 1. A missing key or an
unreachable database is a one-line error with exit code 3.
"""

from __future__ import annotations

import json

import typer

from safecity.platform.runtime import build_runtime
from safecity.security import audit

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@app.command()
def verify(
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Walk the audit chain; report the record count or the FIRST bad link (exit 1)."""
    runtime = build_runtime()
    try:
        with runtime.sessions() as session:
            report = audit.verify(session)
        with runtime.sessions.begin() as session:
            bad = report.first_bad
            audit.record(
                session,
                principal=audit.SYSTEM,
                action="audit.verify",
                target_type="audit_log",
                detail={
                    "via": "cli",
                    "ok": report.ok,
                    "records": report.records,
                    "first_bad_seq": bad.seq if bad else None,
                    "code": bad.code if bad else None,
                },
            )
    finally:
        runtime.close()
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "summary": report.summary()}, indent=2))
    else:
        typer.echo(report.summary(), err=not report.ok)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def checkpoint() -> None:
    """Sign the current chain head now (run it from cron to protect the newest records)."""
    runtime = build_runtime()
    try:
        with runtime.sessions() as session:
            line = audit.checkpoint_now(session)
    finally:
        runtime.close()
    if line is None:
        typer.echo("the audit log is empty; nothing to sign")
    else:
        typer.echo(f"signed checkpoint at seq {line['seq']} (key {line['key']})")
