"""``safecity jobs list | run NAME | worker``: scheduled jobs from the command line."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from safecity.platform import jobs
from safecity.platform.db import transaction
from safecity.platform.errors import SafeCityError
from safecity.platform.runtime import Runtime, build_runtime
from safecity.security import audit

app = typer.Typer(help="Scheduled jobs: list them, run one now, or run the scheduler.")
out = Console()


def _runtime() -> Runtime:
    jobs.load_job_modules()
    return build_runtime()


TIME = "%Y-%m-%d %H:%M"


def format_interval(every: timedelta) -> str:
    """``timedelta(minutes=5)`` → ``"5m"`` (the largest whole unit)."""
    seconds = int(every.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


@app.command("list")
def list_jobs() -> None:
    """Registered jobs, their last run and when each is next due."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            statuses = jobs.Scheduler(runtime).statuses(session)
        table = Table(title="jobs (times in UTC)")
        table.add_column("job", no_wrap=True)
        for name in ("every", "last status", "last started", "items", "next due"):
            table.add_column(name)
        for st in statuses:
            last = st.last_run
            table.add_row(
                st.job.name,
                format_interval(st.job.every),
                _fmt(last.status if last else None),
                _fmt(last.started_at.strftime(TIME) if last else None),
                _fmt(last.items if last else None),
                st.next_due.strftime(TIME),
            )
        out.print(table)
    finally:
        runtime.close()


@app.command("run")
def run_job(name: str = typer.Argument(..., help="Job name, e.g. retention.enforce.")) -> None:
    """Run one job now; exits non-zero when it fails."""
    runtime = _runtime()
    try:
        outcome = jobs.Scheduler(runtime).run_now(name, requested_by=audit.SYSTEM.id)
        with transaction(runtime.sessions) as session:
            audit.record(
                session,
                principal=audit.SYSTEM,
                action="jobs.run",
                target_type="job",
                target_id=outcome.run_id,
                detail={"job": name, "status": outcome.status, "via": "cli"},
            )
    finally:
        runtime.close()
    typer.echo(f"{name}: {outcome.status} (items={_fmt(outcome.items)}, run {outcome.run_id})")
    if outcome.status == "failed":
        raise SafeCityError(f"job {name} failed: {outcome.error}")
    if outcome.status == "partial":
        raise SafeCityError(f"job {name} finished with failures: {outcome.error}")


@app.command("worker")
def worker(
    once: bool = typer.Option(False, "--once", help="Run the due jobs once, then exit."),
    poll: float = typer.Option(30.0, min=0.5, help="Longest sleep between passes (seconds)."),
) -> None:
    """Run the scheduler: every due job once per slot, across all worker processes."""
    runtime = _runtime()
    scheduler = jobs.Scheduler(runtime)
    try:
        if once:
            for outcome in scheduler.run_due():
                typer.echo(f"{outcome.name}: {outcome.status}")
            return
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        typer.echo(f"worker: {len(scheduler.jobs.all())} job(s); Ctrl-C to stop")
        scheduler.run_forever(stop, poll_seconds=poll)
    finally:
        runtime.close()
