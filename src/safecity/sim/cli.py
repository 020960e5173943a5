"""``safecity sim run``: register a synthetic fleet, post its traffic to the ingest API."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import httpx
import typer
from rich.console import Console
from rich.table import Table

from safecity.platform.errors import InvalidInput, ServiceUnavailable
from safecity.platform.runtime import build_runtime
from safecity.sim.city import CitySim, device_token, ensure_sensors, run

app = typer.Typer(help="City simulator: synthetic sensor traffic with planted incidents.")
out = Console()


def wait_until_ready(client: httpx.Client, *, seconds: float) -> None:
    """Poll ``/healthz`` until the server answers, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(f"no answer from {client.base_url}healthz in {seconds:g} s")
        time.sleep(0.5)


@app.command("run")
def run_cmd(
    sensors: int = typer.Option(500, "--sensors", min=1, help="Synthetic sensors (registered)."),
    rate: float = typer.Option(50.0, "--rate", min=0.1, help="Events per second."),
    minutes: float = typer.Option(1.0, "--minutes", min=0.01, help="How long to send."),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="SafeCity API base URL."),
    truth: Path = typer.Option(
        Path("var/sim-truth.jsonl"), "--truth", help="Ground-truth JSONL (appended)."
    ),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same fleet)."),
    incident_rate: float = typer.Option(
        0.3, "--incident-rate", min=0.0, max=1.0, help="Share of batches with a planted item."
    ),
    wait: float = typer.Option(
        0.0, "--wait", min=0.0, help="Seconds to wait for the server's /healthz before sending."
    ),
) -> None:
    """Register N sensors if missing, then send their traffic at RATE for MINUTES."""
    runtime = build_runtime()
    try:
        with runtime.sessions.begin() as session:
            fleet = ensure_sensors(session=session, n=sensors, seed=seed)
            token = device_token(session=session)
    finally:
        runtime.close()
    if fleet.size == 0:
        raise InvalidInput("no simulator sensors are registered")
    sim = CitySim(fleet, seed=seed, incident_rate=incident_rate)
    truth.parent.mkdir(parents=True, exist_ok=True)
    out.print(f"simulating {fleet.size} sensors at {rate:g}/s for {minutes:g} min → {url}")
    with httpx.Client(base_url=url, timeout=30.0) as client, truth.open("a") as fh:
        if wait > 0:
            wait_until_ready(client, seconds=wait)
        stats = run(client, sim, token=token, rate=rate, seconds=minutes * 60, truth=fh)
    out.print(json.dumps(stats.to_dict()), markup=False, highlight=False, soft_wrap=True)
    out.print(f"ground truth (synthetic) appended to {truth}")


@app.command("evaluate")
def evaluate_cmd(
    sensors: int = typer.Option(2000, "--sensors", min=10, help="Synthetic sensors."),
    days: float = typer.Option(10.0, "--days", min=0.1, max=60, help="Virtual days to simulate."),
    seed: int = typer.Option(1, "--seed", help="Random seed."),
    loss: float = typer.Option(
        0.0, "--loss", min=0.0, max=0.5, help="Share of planted messages lost on the way."
    ),
    delay: float = typer.Option(
        0.0, "--delay", min=0.0, max=0.5, help="Share of planted messages up to 4 min late."
    ),
    output: Path | None = typer.Option(None, "--output", help="Write the report as JSON here."),
) -> None:
    """Precision and recall (synthetic) of the shipped rules against the simulator's
    ground truth, on a throwaway SQLite database with the demo city."""
    if output is not None and not output.parent.is_dir():  # fail before a minute of work
        raise InvalidInput(f"--output: directory {output.parent} does not exist")
    from safecity.demo_city import seed_demo_orgs
    from safecity.platform.cli_progress import progress_bar
    from safecity.platform.migrations import upgrade
    from safecity.security import audit
    from safecity.settings import Settings
    from safecity.sim.evaluate import evaluate

    with tempfile.TemporaryDirectory(prefix="safecity-sim-") as tmp:
        settings = Settings(var_dir=Path(tmp), key_dir=Path(tmp) / "keys", log_json=False)
        upgrade("head", database_url=settings.effective_database_url)
        runtime = build_runtime(settings)
        try:
            with runtime.sessions.begin() as session:
                seed_demo_orgs(session, actor=audit.SYSTEM)
            with progress_bar(out, f"{days:g} virtual days", verb="simulating") as progress:
                report = evaluate(
                    runtime,
                    sensors=sensors,
                    days=days,
                    seed=seed,
                    loss_rate=loss,
                    delay_rate=delay,
                    progress=progress,
                )
        finally:
            runtime.close()
    table = Table(title="Shipped rules vs simulator ground truth (synthetic)")
    for column in ("category", "incidents", "found", "alerts", "true +", "false +"):
        table.add_column(column, justify="right" if column != "category" else "left")
    for category, row in report["by_category"].items():
        table.add_row(
            category,
            *(str(row.get(k, 0)) for k in ("incidents", "found", "alerts")),
            str(row.get("true_positives", 0)),
            str(row.get("false_positives", 0)),
        )
    out.print(table)
    precision, recall = report["precision"], report["recall"]
    out.print(
        f"precision {'-' if precision is None else f'{precision:.3f}'} · recall "
        f"{'-' if recall is None else f'{recall:.3f}'} · {report['incidents']} incidents, "
        f"{report['confounders']} confounders, {report['events']} events (synthetic)"
    )
    if output is not None:
        try:
            output.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise InvalidInput(f"--output: cannot write {output}: {exc.strerror}") from None
