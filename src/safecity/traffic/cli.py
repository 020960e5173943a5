"""``safecity traffic bench``: run the SUMO benchmark from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from safecity.platform.errors import InvalidInput
from safecity.traffic import scenarios as sc

app = typer.Typer(help="Adaptive traffic signals measured in SUMO.", no_args_is_help=True)
out = Console()


def _floats(raw: str, what: str) -> list[float]:
    try:
        return [float(p) for p in raw.split(",") if p.strip()]
    except ValueError as exc:
        raise InvalidInput(f"{what}: expected comma-separated numbers, got {raw!r}") from exc


@app.command()
def bench(
    scenario: str = typer.Option(
        "all", "--scenario", help="all, RESCO names (comma-separated) or .sumocfg paths."
    ),
    controller: str = typer.Option("all", "--controller", help="all or names, comma-separated."),
    seeds: int = typer.Option(5, "--seeds", min=1, help="Number of seeds."),
    first_seed: int = typer.Option(1, "--first-seed", help="1 scores; 101 is for tuning."),
    scale: str = typer.Option("1.0", "--scale", help="Demand scale(s), e.g. 0.8,1.0,1.2."),
    jobs: int = typer.Option(2, "--jobs", min=1, help="Parallel SUMO processes."),
    protocol: str = typer.Option(
        "network", "--protocol", help="Safety timings: network (the net's) or resco."
    ),
    output: Path = typer.Option(
        Path("traffic_bench.json"), "--out", help="JSON result; the table goes to .md."
    ),
) -> None:
    """Run scenario x controller x seed and write the JSON + Markdown table."""
    from safecity.traffic.bench import markdown, resolve_controllers, run_bench, write_report

    if protocol not in ("network", "resco"):
        raise InvalidInput("--protocol must be network or resco")
    scenarios = sc.resolve(scenario)
    controllers = resolve_controllers(controller)
    scales = _floats(scale, "--scale")
    seed_list = list(range(first_seed, first_seed + seeds))
    total = len(scenarios) * len(controllers) * len(scales) * len(seed_list)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    ) as progress:
        task = progress.add_task("episodes", total=total)
        report = run_bench(
            scenarios,
            controllers,
            seed_list,
            scales=scales,
            protocol="resco" if protocol == "resco" else "network",
            jobs=jobs,
            on_done=lambda r: progress.update(
                task, advance=1, description=f"{r.scenario} {r.controller} seed {r.seed}"
            ),
        )
    json_path, md_path = write_report(report, output)
    out.print(markdown(report), markup=False, highlight=False)
    out.print(f"wrote {json_path} and {md_path}")
