"""``safecity crowd train | forecast | backtest``: hourly crowd forecasts per hotspot.

Counts come as the product CSV (``hotspot,timestamp,count``; see
:mod:`safecity.crowd.datasets`); a model is one JSON file (LightGBM text models inside).
Errors end as one line on stderr and a non-zero exit (``safecity.cli.main``).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from safecity.crowd.datasets import BENCHMARKS, load_benchmark, read_counts_csv
from safecity.crowd.forecast import ForecastConfig, Forecaster, horizons_arg
from safecity.platform.errors import InvalidInput

app = typer.Typer(help="Large-crowd risk: hourly forecasts per hotspot.", no_args_is_help=True)
out = Console()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=out
    )


@app.command()
def train(
    counts: Path = typer.Argument(..., help="Counts CSV (hotspot,timestamp,count)."),
    model: Path = typer.Option(..., "--model", "-m", help="Where to write the model (JSON)."),
    tz: str = typer.Option("Asia/Shanghai", help="Hotspots' time zone (calendar features)."),
    region: str = typer.Option("CN", help="Holiday region in the holiday table."),
    horizons: str = typer.Option("1,2,3", help="Horizons in hours, comma-separated."),
    calibration_days: int = typer.Option(28, help="Days held out to calibrate intervals."),
    rounds: int = typer.Option(ForecastConfig().num_rounds, help="Boosting rounds per horizon."),
) -> None:
    """Train one model per horizon on COUNTS and calibrate its intervals."""
    data, report = read_counts_csv(counts, tz=tz, region=region)
    if calibration_days < 1:
        raise InvalidInput("--calibration-days must be at least 1")
    config = ForecastConfig(
        horizons=horizons_arg(horizons), calibration_days=calibration_days, num_rounds=rounds
    )
    forecaster = Forecaster(config)
    with _progress() as bar:
        task = bar.add_task("training", total=None)
        forecaster.fit(data, progress=lambda msg: bar.update(task, description=msg))
    forecaster.save(model)
    out.print(
        f"trained {len(data.sites)} hotspot(s), {report.rows} counts, {report.gaps} gap(s) "
        f"marked; horizons {','.join(map(str, config.horizons))} h → {model}",
        markup=False,
        highlight=False,
    )


@app.command()
def forecast(
    counts: Path = typer.Argument(..., help="Recent counts CSV (hotspot,timestamp,count)."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file from `crowd train`."),
    level: float = typer.Option(0.9, help="Interval level (a calibrated one: 0.5/0.8/0.9/0.95)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Forecast every hotspot 1..3 h after the last hour in COUNTS."""
    forecaster = Forecaster.load(model)
    data, _ = read_counts_csv(
        counts, tz=forecaster.tz, region=forecaster.region, known_hotspots=forecaster.sites
    )
    results = forecaster.forecast(data, level=level)
    if as_json:
        for f in results:
            typer.echo(json.dumps(f.as_dict()))
        return
    table = Table("hotspot", "target (UTC)", "h", "forecast", f"{level:.0%} interval")
    for f in results:
        table.add_row(
            f.site,
            f.target.strftime("%Y-%m-%d %H:%M"),
            str(f.horizon),
            f"{f.point:,.0f}",
            f"{f.lower:,.0f} – {f.upper:,.0f}",
        )
    out.print(table)


@app.command()
def backtest(
    dataset: str = typer.Option(
        ..., "--dataset", help=f"Benchmark: {', '.join(sorted(BENCHMARKS))}."
    ),
    horizons: str = typer.Option("1,3", help="Horizons in hours, comma-separated."),
    rounds: int = typer.Option(ForecastConfig().num_rounds, help="Boosting rounds per horizon."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results JSON here."),
) -> None:
    """Run a benchmark's protocol (data under $SAFECITY_BENCH_DATA/crowd) and print the scores."""
    from safecity.crowd.backtest import run_backtest

    config = ForecastConfig(horizons=horizons_arg(horizons), num_rounds=rounds)
    bench = load_benchmark(dataset)
    with _progress() as bar:
        task = bar.add_task(f"{dataset}: training", total=None)
        result = run_backtest(
            bench, config=config, progress=lambda msg: bar.update(task, description=msg)
        )
    table = Table("h", "MAE", "WAPE", "90% coverage", "cov. above thr.", "alert R / P (point)")
    for h, r in result["horizons"].items():
        band = r[f"interval_{config.level:g}"]
        above = band["coverage_above_threshold"]
        table.add_row(
            h,
            f"{r['mae']:.1f}",
            f"{r['wape']:.1%}",
            f"{band['coverage']:.1%}",
            "-" if above is None else f"{above:.1%}",
            f"{r['alert_point']['recall']:.2f} / {r['alert_point']['precision']:.2f}",
        )
    out.print(table)
    out.print(
        f"train {result['train_seconds']:.1f} s; forecast all hotspots "
        f"{result['forecast_all_sites_seconds'] * 1000:.0f} ms ({platform.node()})",
        markup=False,
        highlight=False,
    )
    if output is not None:
        output.write_text(json.dumps(result, indent=2), encoding="utf-8")
