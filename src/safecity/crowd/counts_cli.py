"""``safecity crowd counts import FILE.csv``: load hourly counts into the database.

Two CSV layouts, told apart by the header (``docs/crowd-feeds.md``):

* the feed's long format, one sensor and hour per row: ``hotspot,sensor,hour,count`` and an
  optional ``kind`` column (default ``--kind``);
* the product CSV of :mod:`safecity.crowd.datasets`: ``hotspot,timestamp,count``, one
  hotspot total per hour, stored under the pseudo-sensor ``total:<hotspot>`` (for history
  from before the live sensors; do not mix it with live sensors for the same hours or the
  total counts twice).

Every row goes through the same checks as the API (:func:`safecity.crowd.counts.record_counts`)
and the whole file is one transaction: the first bad row ends the command with one line
naming it and a non-zero exit, and nothing of the file is stored. A repeated sensor and
hour keeps the later row (latest wins). After the import, gaps and outages are marked over
the imported period (:func:`safecity.crowd.counts.mark_gaps`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from safecity.crowd import counts
from safecity.crowd.datasets import read_text
from safecity.platform.cli_progress import progress_bar
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import InvalidInput
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit

app = typer.Typer(help="Hourly people counts: import a CSV of counts.", no_args_is_help=True)
out = Console()

LONG = ("hotspot", "sensor", "hour", "count")
TOTALS = ("hotspot", "timestamp", "count")
PROGRESS_FROM = 2 * counts.MAX_BATCH


def _runtime() -> Runtime:
    return build_runtime()


def _number(text: str) -> Any:
    raw = text.strip()
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw  # refused by the report parser: "count must be a number"


def read_reports(text: str, *, name: str, kind: str) -> list[dict[str, Any]]:
    """The CSV's rows as reports (row ``i`` is line ``i + 2``)."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise InvalidInput(f"{name}: malformed CSV: {exc}") from None
    if not rows:
        raise InvalidInput(f"{name}: empty file")
    header = tuple(h.strip().lower() for h in rows[0])
    totals = header == TOTALS
    if not totals and header not in (LONG, (*LONG, "kind")):
        raise InvalidInput(
            f"{name}: header must be {','.join(LONG)}[,kind] or {','.join(TOTALS)}, "
            f"got {','.join(header)[:80]!r}"
        )
    reports: list[dict[str, Any]] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise InvalidInput(
                f"{name} line {lineno}: expected {len(header)} fields, got {len(row)}"
            )
        cells = dict(zip(header, (c.strip() for c in row), strict=True))
        if totals:
            report = {
                "hotspot": cells["hotspot"],
                "sensor": f"total:{cells['hotspot']}"[:64],
                "hour": cells["timestamp"],
                "count": _number(cells["count"]),
                "kind": kind,
            }
        else:
            report = {
                "hotspot": cells["hotspot"],
                "sensor": cells["sensor"],
                "hour": cells["hour"],
                "count": _number(cells["count"]),
                "kind": cells.get("kind") or kind,
            }
        report["_line"] = lineno
        reports.append(report)
    if not reports:
        raise InvalidInput(f"{name}: no data rows")
    return reports


@app.command("import")
def import_counts(
    file: Path = typer.Argument(
        ..., help="CSV: hotspot,sensor,hour,count[,kind] or hotspot,timestamp,count."
    ),
    kind: str = typer.Option(
        "counter", help=f"Sensor kind when the file has none: {', '.join(counts.KINDS)}."
    ),
) -> None:
    """Validate FILE and store its counts in one transaction; then mark gaps and outages."""
    if kind not in counts.KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(counts.KINDS)}")
    rows = read_reports(read_text(file), name=file.name, kind=kind)
    lines = [r.pop("_line") for r in rows]
    totals = {"stored": 0, "replaced": 0, "duplicates": 0, "hours": 0}
    hotspots: set[str] = set()
    now = utcnow()
    runtime = _runtime()
    try:
        with (
            progress_bar(out, file.name, show_from=PROGRESS_FROM) as progress,
            transaction(runtime.sessions) as session,
        ):
            for begin in range(0, len(rows), counts.MAX_BATCH):
                chunk = rows[begin : begin + counts.MAX_BATCH]
                try:
                    report = counts.record_counts(
                        session, principal=audit.SYSTEM, reports=chunk, now=now
                    )
                except InvalidInput as exc:
                    index = exc.extra.get("index")
                    if not isinstance(index, int):
                        raise
                    detail = exc.detail.split(": ", 1)[-1]
                    raise InvalidInput(
                        f"{file.name} line {lines[begin + index]}: {detail}"
                    ) from None
                for key in totals:
                    totals[key] += getattr(report, key)
                hotspots.update(report.hotspots)
                progress(begin + len(chunk), len(rows))
            since = min(counts.parse_report(r, index=0, now=now).hour for r in rows)
            gaps = counts.mark_gaps(session, now=now, since=since)
    finally:
        runtime.close()
    out.print(
        f"imported {len(rows)} count(s) for {len(hotspots)} hotspot(s) from {file.name}: "
        f"{totals['stored']} sensor-hour(s) stored ({totals['replaced']} replaced, "
        f"{totals['duplicates']} repeated in the file), {totals['hours']} hotspot-hour(s); "
        f"{gaps.gaps} gap(s) and {gaps.outages} outage hour(s) marked",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
