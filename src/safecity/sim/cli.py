"""``safecity sim run``: register a synthetic fleet, post its traffic to the ingest API."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import typer
from rich.console import Console

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
