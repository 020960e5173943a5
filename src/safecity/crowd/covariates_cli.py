"""``safecity crowd covariates import KIND FILE.csv`` and ``safecity crowd events import
FILE.yaml``: load outside feeds and the events calendar (:mod:`safecity.crowd.covariates`).

Each file is one transaction and all or nothing: the first bad row (or calendar entry)
ends the command with one line naming the file and line, a non-zero exit, and nothing of
the file stored. Stored and validated, not yet used by the forecasting model.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from safecity.crowd import covariates
from safecity.crowd.datasets import read_text
from safecity.platform.cli_progress import progress_bar
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit

covariates_app = typer.Typer(
    help="Outside feeds (arrivals, hotel occupancy, weather): import a CSV.",
    no_args_is_help=True,
)
events_app = typer.Typer(help="The events calendar: import a YAML file.", no_args_is_help=True)
out = Console()


def _runtime() -> Runtime:
    return build_runtime()


def read_rows(text: str, *, name: str, kind: str) -> tuple[list[dict[str, Any]], list[int]]:
    """The CSV's rows as dicts and each row's line number; the header must be the kind's
    columns (``scope,hour,arrivals`` ...) with an optional ``source``."""
    feed = covariates.FEEDS.get(kind)
    if feed is None:
        raise InvalidInput(f"KIND must be one of {', '.join(covariates.KINDS)}, got {kind!r}")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InvalidInput(f"{name}: malformed CSV: {exc}") from None
    if not rows:
        raise InvalidInput(f"{name}: empty file")
    header = tuple(h.strip().lower() for h in rows[0])
    expected = ("scope", feed.time, feed.value)
    if header not in (expected, (*expected, "source")):
        raise InvalidInput(
            f"{name}: header for {kind} must be {','.join(expected)}[,source], "
            f"got {','.join(header)[:80]!r}"
        )
    data: list[dict[str, Any]] = []
    lines: list[int] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InvalidInput(
                f"{name} line {lineno}: expected {len(header)} fields, got {len(row)}"
            )
        data.append(dict(zip(header, (c.strip() for c in row), strict=True)))
        lines.append(lineno)
    if not data:
        raise InvalidInput(f"{name}: no data rows")
    if len(data) > covariates.MAX_FILE_ROWS:
        raise PayloadTooLarge(f"{name}: at most {covariates.MAX_FILE_ROWS} rows per file")
    return data, lines


@covariates_app.command("import")
def import_covariates(
    kind: str = typer.Argument(..., help=f"One of: {', '.join(covariates.KINDS)}."),
    file: Path = typer.Argument(..., help="CSV: scope,hour|day,<value>[,source]."),
    source: str = typer.Option("", help="Source of rows without one (default: the file name)."),
) -> None:
    """Validate FILE and store its values in one transaction (all or nothing)."""
    rows, lines = read_rows(read_text(file), name=file.name, kind=kind)
    runtime = _runtime()
    try:
        with (
            progress_bar(out, file.name, show_from=covariates.MAX_BATCH) as progress,
            transaction(runtime.sessions) as session,
        ):
            progress(0, len(rows))
            report = covariates.record_covariates(
                session,
                principal=audit.SYSTEM,
                kind=kind,
                rows=rows,
                now=utcnow(),
                source=(source.strip() or file.name)[: covariates.MAX_SOURCE],
                where=[f"{file.name} line {n}" for n in lines],
                max_rows=covariates.MAX_FILE_ROWS,
            )
            progress(len(rows), len(rows))
    finally:
        runtime.close()
    out.print(
        f"imported {report.accepted} {kind} value(s) for {len(report.scopes)} scope(s) from "
        f"{file.name}: {report.created} new, {report.updated} replaced, "
        f"{report.duplicates} repeated in the file",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@events_app.command("import")
def import_events(
    file: Path = typer.Argument(..., help="YAML calendar: events: [{code, name, ...}]."),
) -> None:
    """Validate every entry of FILE, then create or update its events (all or nothing)."""
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    if file.stat().st_size > covariates.MAX_CALENDAR_BYTES:
        raise PayloadTooLarge(f"{file.name} is larger than {covariates.MAX_CALENDAR_BYTES} bytes")
    document, lines = covariates.parse_calendar_yaml(file.read_bytes(), name=file.name)
    runtime = _runtime()
    try:
        with (
            progress_bar(out, file.name, show_from=0) as progress,
            transaction(runtime.sessions) as session,
        ):
            report = covariates.import_calendar(
                session, principal=audit.SYSTEM, document=document, name=file.name, lines=lines
            )
            progress(report.total, report.total)
    finally:
        runtime.close()
    out.print(
        f"imported {report.total} event(s) from {file.name}: {report.created} created, "
        f"{report.updated} updated, {report.unchanged} unchanged",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
