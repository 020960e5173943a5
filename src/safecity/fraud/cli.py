"""``safecity fraud sim | feeds | …``: the anti-fraud early-warning commands.

``sim`` races the engine against the first transfer on the seeded replay simulator and
prints the figures (and writes them as JSON with ``--output``). Errors end as one line
on stderr and a non-zero exit (``safecity.cli.main``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from safecity.fraud import evaluate, feeds
from safecity.fraud.sim import SimConfig
from safecity.platform.errors import InvalidInput

app = typer.Typer(help="Anti-telecom-fraud early warning.", no_args_is_help=True)
out = Console()


def _check_output(path: Path | None) -> None:
    if path is None:
        return
    if not path.parent.exists():
        raise InvalidInput(f"--output folder {path.parent} does not exist")
    if path.exists() and path.is_dir():
        raise InvalidInput(f"--output {path} is a folder")


@app.command()
def sim(
    citizens: int = typer.Option(20_000, help="Simulated citizens."),
    hours: float = typer.Option(24.0, help="Simulated hours."),
    episodes: int = typer.Option(200, help="Scam episodes (victims)."),
    seed: int = typer.Option(7, help="Random seed (same seed, same stream)."),
    flag_share: float = typer.Option(0.6, help="Share of scam-site visits operators flag."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the figures as JSON."),
) -> None:
    """Race the engine against each scam's first transfer on a simulated city."""
    if citizens < 100 or hours <= 0 or episodes < 1 or episodes > citizens // 2:
        raise InvalidInput("need --citizens ≥ 100, --hours > 0 and 1 ≤ --episodes ≤ citizens/2")
    if not 0.0 <= flag_share <= 1.0:
        raise InvalidInput("--flag-share must be between 0 and 1")
    _check_output(output)
    config = SimConfig.for_city(
        citizens, seed=seed, hours=hours, episodes=episodes, flag_share=flag_share
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("replaying", total=None)
        result = evaluate.run(config, progress=lambda n: bar.update(task, completed=n))
    table = Table(
        title=f"fraud race, seed {seed}: {result.events:,} events, {result.episodes} scams"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    p50, p99 = result.time_to_warning_p50_s, result.time_to_warning_p99_s
    rows = [
        ("warned before the first transfer", f"{result.warned_before_transfer:.1%}", "≥ 90%"),
        ("warned at all", f"{result.warned_at_all:.1%}", ""),
        ("time to warning p50 / p99", f"{(p50 or 0) / 60:.1f} / {(p99 or 0) / 60:.1f} min", ""),
        ("warnings per true victim", f"{result.warnings_per_victim:.2f}", "≤ 3"),
        ("stop-pay on the first transfer", f"{result.stop_pay_on_first_transfer:.1%}", ""),
        (
            "false warnings / 10k citizens / day",
            f"{result.false_warnings_per_10k_citizens_day:.1f}",
            "",
        ),
        ("  of which to scam targets", f"{result.false_warnings_to_scam_targets:,}", ""),
        ("  of which to uninvolved people", f"{result.false_warnings_to_uninvolved:,}", ""),
        ("stop-pay on others' transfers", f"{result.stop_pay_false:,}", ""),
        (
            "block proposals right / wrong",
            f"{result.block_proposals_true} / {result.block_proposals_false}",
            "",
        ),
        ("engine cost per event", f"{result.engine_us_per_event:.1f} µs", "≤ 100 µs"),
        ("intake cost per event", f"{result.intake_us_per_event:.1f} µs", ""),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)
    if output is not None:
        data = {
            **dataclasses.asdict(result),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
        }
        output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.print(f"figures → {output}", markup=False, highlight=False)


@app.command("feeds")
def list_feeds(
    schema: str | None = typer.Option(None, help="Print one feed's JSON schema."),
) -> None:
    """The intake feeds: what each carries, its purpose and retention."""
    if schema is not None:
        spec = feeds.FEEDS.get(schema)
        if spec is None:
            raise InvalidInput(f"unknown feed {schema!r}; feeds: {', '.join(feeds.FEEDS)}")
        out.print_json(json.dumps(spec.model.model_json_schema(), ensure_ascii=False))
        return
    table = Table(title="fraud intake feeds")
    for column in ("feed", "retention", "description"):
        table.add_column(column)
    for name, spec in feeds.FEEDS.items():
        table.add_row(name, f"{spec.retention_days} days", spec.description)
    out.print(table)


@app.command("feed")
def feed_cmd(
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="SafeCity API base URL."),
    minutes: float = typer.Option(10.0, "--minutes", min=0.1, help="How long to play rounds."),
    wait: float = typer.Option(0.0, "--wait", min=0.0, help="Seconds to wait for /healthz."),
    seed: int = typer.Option(1, "--seed", help="Random seed of the made-up numbers."),
) -> None:
    """Play the demo's scam in real time against a running platform (over HTTP)."""
    import httpx
    from shapely.geometry import shape

    from safecity.fraud.demo_feed import play
    from safecity.orgs import service as orgs
    from safecity.platform.runtime import build_runtime
    from safecity.sim.city import device_token
    from safecity.sim.cli import wait_until_ready

    runtime = build_runtime()
    try:
        with runtime.sessions.begin() as session:
            token = device_token(session=session)
            stations, _ = orgs.list_orgs(session=session, kind="station", limit=500)
            areas = [s.area for s in stations if s.area]
            if not areas:
                raise InvalidInput("no station has an area: seed the demo city first")
            centre = shape(areas[0]).representative_point()
    finally:
        runtime.close()
    with httpx.Client(base_url=url, timeout=30.0) as client:
        if wait > 0:
            wait_until_ready(client, seconds=wait)
        rounds = play(
            client,
            token=token,
            point=(centre.y, centre.x),
            minutes=minutes,
            seed=seed,
            log=lambda line: out.print(line, markup=False, highlight=False),
        )
    out.print(f"played {rounds} round(s)")
