"""``safecity rules``: check a rule file, replay recorded events through it.

    safecity rules check FILE               validate; one-line error and exit 2 when invalid
    safecity rules replay RULES EVENTS.jsonl [--json] [--until ISO]
    safecity rules shipped                  list the starter rules

RULES is a rule file or a directory of ``*.yaml`` rule files (``shipped`` = the starter set).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime, build_runtime
from safecity.sensing.rules import Match, RuleEngine, RuleSet

app = typer.Typer(help="Sensing rules: validate rule files, replay recorded events.")
err = Console(stderr=True)


def _runtime() -> Runtime:
    return build_runtime()


def _fail(message: str) -> typer.Exit:
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(2)


def load_rules(spec: str) -> RuleSet:
    """A rule file, a directory of ``*.yaml`` files, or ``shipped``."""
    if spec == "shipped":
        return RuleSet.shipped()
    path = Path(spec)
    if path.is_dir():
        files = sorted(path.glob("*.yaml"))
        if not files:
            raise InvalidInput(f"{path}: no *.yaml rule files")
        return RuleSet.from_files(files)
    return RuleSet.from_file(path)


def read_events(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, event) per non-blank line; ``None`` for a line that is not a JSON object."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                yield lineno, None
                continue
            yield lineno, obj if isinstance(obj, dict) else None


def replay(ruleset: RuleSet, path: Path, *, until: str | None = None) -> dict[str, Any]:
    """Run every event of a JSON-lines file through a fresh engine; matches and counters."""
    engine = RuleEngine(ruleset)
    matches: list[Match] = []
    unreadable = 0
    for _lineno, event in read_events(path):
        if event is None:
            unreadable += 1
            continue
        matches.extend(engine.process(event))
    if until is not None:
        try:
            matches.extend(engine.advance(until))
        except ValueError:
            raise InvalidInput(f"--until {until!r} is not an ISO time with an offset") from None
    stats = engine.stats()
    stats["unreadable_lines"] = unreadable
    return {"matches": matches, "stats": stats}


@app.command("check")
def check(path: str = typer.Argument(..., help="Rule file (YAML) or directory.")) -> None:
    """Validate a rule file: any error rejects the whole file."""
    try:
        ruleset = load_rules(path)
    except InvalidInput as exc:
        raise _fail(exc.detail) from None
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(ruleset.kinds().items()))
    typer.echo(f"ok: {len(ruleset)} rules ({kinds})")


@app.command("replay")
def replay_cmd(
    rules: str = typer.Argument(..., help="Rule file, directory, or 'shipped'."),
    events: Path = typer.Argument(..., help="Recorded events, one JSON object per line."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    until: str | None = typer.Option(
        None, help="Advance the event-time clock to this ISO time at the end (fires absences)."
    ),
) -> None:
    """Print the alerts a rule file would have raised on a recorded event file."""
    try:
        ruleset = load_rules(rules)
        result = replay(ruleset, events, until=until)
    except InvalidInput as exc:
        raise _fail(exc.detail) from None
    matches: list[Match] = result["matches"]
    stats: dict[str, Any] = result["stats"]
    if as_json:
        out = {"matches": [m.to_dict() for m in matches], "stats": stats}
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2))
        return
    console = Console()
    table = Table(title=f"{len(matches)} matches")
    for col in ("time (UTC)", "rule", "severity", "key", "count", "category", "dedup key"):
        table.add_column(col)
    for m in matches:
        table.add_row(
            m.time.strftime("%Y-%m-%d %H:%M:%S"),
            m.rule_id,
            m.severity,
            m.key,
            str(m.count),
            m.category,
            m.dedup_key,
        )
    console.print(table)
    console.print(
        f"events {stats['processed']}, duplicates {stats['duplicates']}, "
        f"invalid {stats['invalid']}, unreadable lines {stats['unreadable_lines']}, "
        f"dropped late {stats['dropped_late']}",
        highlight=False,
    )


@app.command("shipped")
def shipped() -> None:
    """List the starter rules shipped with SafeCity."""
    ruleset = RuleSet.shipped()
    table = Table(title=f"{len(ruleset)} shipped rules")
    for col in ("id", "kind", "severity", "category", "key"):
        table.add_column(col)
    for r in ruleset.rules:
        table.add_row(r.id, r.kind, r.severity, r.alert.category, ", ".join(r.key))
    Console().print(table)


@app.command("publish")
def publish_cmd(
    path: Path = typer.Argument(..., help="Rule file (YAML) to publish as the new version."),
    note: str = typer.Option("", "--note", help="Why (kept with the version and audited)."),
) -> None:
    """Validate FILE as a whole and publish it; every running pipeline reloads it."""
    from safecity.platform.db import transaction
    from safecity.security import audit
    from safecity.sensing import rulesets

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: cannot read: {exc}") from None
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            row = rulesets.publish(session, yaml_text=text, actor=audit.SYSTEM, note=note)
            version, diff = row.version, dict(row.diff)
    except InvalidInput as exc:
        for line in exc.extra.get("errors", [exc.detail]):
            err.print(f"error: {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        runtime.close()
    typer.echo(
        f"published version {version}: kept {len(diff['kept'])}, changed {len(diff['changed'])},"
        f" added {len(diff['added'])}, removed {len(diff['removed'])}"
    )


@app.command("versions")
def versions_cmd(
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Published rule-set versions, newest first (version 0 = the shipped rules)."""
    from sqlalchemy import select

    from safecity.sensing.ops_models import RuleSetVersion

    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            rows = [
                {
                    "version": r.version,
                    "active": r.active,
                    "created_at": r.created_at.isoformat(),
                    "author_id": r.author_id,
                    "rule_count": r.rule_count,
                    "sha256": r.sha256[:12],
                    "note": r.note,
                }
                for r in session.scalars(
                    select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(200)
                )
            ]
    finally:
        runtime.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table(title="rule-set versions" if rows else "no published versions: shipped rules")
    for col in ("version", "active", "created (UTC)", "author", "rules", "sha256", "note"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
