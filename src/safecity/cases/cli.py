"""``safecity cases stats rebuild | check``: the public statistics of the halls.

``rebuild`` recomputes every counter from the cases, their timelines and ratings in one
transaction (audited); ``check`` recomputes them in memory and compares them with the
stored counters (exit 1 when they differ). Errors end as one line on stderr and a non-zero
exit (``safecity.cli.main``).
"""

from __future__ import annotations

import time

import typer

from safecity.cases import stats
from safecity.platform.db import transaction
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit

app = typer.Typer(help="Cases: the public statistics of the portal's halls.")
stats_app = typer.Typer(help="Materialised statistics of the halls (city, district, station).")
app.add_typer(stats_app, name="stats")


def _runtime() -> Runtime:
    return build_runtime()


@stats_app.command("rebuild")
def rebuild() -> None:
    """Recompute every counter from scratch (same figures as the incremental updates)."""
    runtime = _runtime()
    try:
        started = time.perf_counter()
        with transaction(runtime.sessions) as session:
            report = stats.rebuild(session)
            audit.record(
                session,
                principal=audit.SYSTEM,
                action="cases.stats.rebuild",
                target_type="case_stats",
                detail={"cases": report.cases, "rows": report.rows},
            )
        seconds = time.perf_counter() - started
        typer.echo(f"rebuilt {report.rows} counters from {report.cases} cases in {seconds:.1f} s")
    finally:
        runtime.close()


@stats_app.command("check")
def check() -> None:
    """Compare the stored counters with a fresh computation (changes nothing)."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            stored = stats.counters(session)
            fresh = stats.computed(session)
        differ = sorted(k for k in stored.keys() | fresh.keys() if stored.get(k) != fresh.get(k))
        if differ:
            typer.echo(f"{len(differ)} counters differ, e.g. {differ[0]}: run `rebuild`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{len(stored)} counters match the cases")
    finally:
        runtime.close()
