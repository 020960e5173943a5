"""``safecity crowd train | forecast | backtest``: hourly crowd forecasts per hotspot;
``safecity crowd hotspots import FILE | list``: the hotspots themselves (GeoJSON).

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

from safecity.crowd.counts_cli import app as counts_app
from safecity.crowd.covariates_cli import covariates_app, events_app
from safecity.crowd.datasets import BENCHMARKS, load_benchmark, read_counts_csv
from safecity.crowd.forecast import ForecastConfig, Forecaster, horizons_arg
from safecity.platform.db import transaction
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.runtime import Runtime, build_runtime

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


# --- hotspots: ``safecity crowd hotspots import FILE | list`` -----------------------------

hotspots_app = typer.Typer(help="Hotspots: import a GeoJSON file, list them.", no_args_is_help=True)
app.add_typer(hotspots_app, name="hotspots")


def _runtime() -> Runtime:
    return build_runtime()


@hotspots_app.command("import")
def import_hotspots(
    file: Path = typer.Argument(..., help="A GeoJSON FeatureCollection of hotspots."),
) -> None:
    """Check every feature of FILE, then create or update its hotspots (all or nothing)."""
    from safecity.crowd import hotspots
    from safecity.security import audit

    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    if file.stat().st_size > hotspots.MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"{file} is larger than {hotspots.MAX_IMPORT_BYTES} bytes")
    content = file.read_bytes()
    runtime = _runtime()
    try:
        with transaction(runtime.sessions) as session:
            report = hotspots.import_geojson(session=session, principal=audit.SYSTEM, text=content)
    finally:
        runtime.close()
    out.print(
        f"imported {report.total} hotspot(s) from {file.name}: {report.created} created, "
        f"{report.updated} updated, {report.unchanged} unchanged",
        markup=False,
        highlight=False,
    )


@hotspots_app.command("list")
def list_hotspots(
    include_inactive: bool = typer.Option(False, "--all", help="Include inactive hotspots."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Hotspots by code, with their thresholds in people."""
    from safecity.crowd import hotspots
    from safecity.security import audit

    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            rows = hotspots.all_in_scope(
                session=session, principal=audit.SYSTEM, active_only=not include_inactive
            )
            if as_json:
                for h in rows:
                    row = hotspots.read(h).model_dump(mode="json")
                    typer.echo(json.dumps(row, ensure_ascii=False))
                return
            table = Table("code", "name", "area m²", "capacity", "warn / critical people", "active")
            for h in rows:
                found = hotspots.thresholds(h)
                table.add_row(
                    h.code,
                    f"{h.name_zh} / {h.name_en}",
                    f"{h.area_m2:,.0f}",
                    f"{h.capacity:,}",
                    f"{found.warn_people:,.0f} / {found.critical_people:,.0f}",
                    "yes" if h.active else "no",
                )
    finally:
        runtime.close()
    out.print(table)


# --- product path on the database: ``safecity crowd retrain | forecast-now`` -------------


@app.command("retrain")
def retrain(
    weeks: int = typer.Option(12, help="Weeks of stored counts to train on."),
) -> None:
    """Train a model version on the database's counts and make it active (as the job does)."""
    from safecity.crowd import forecasting
    from safecity.platform.db import utcnow

    runtime = _runtime()
    try:
        with _progress() as bar:
            bar.add_task("training on the stored counts", total=None)
            with transaction(runtime.sessions) as session:
                model = forecasting.train(
                    session, settings=runtime.settings, now=utcnow(), weeks=weeks
                )
                version, hotspots = model.version, len(model.hotspots)
                seconds = model.metrics.get("train_seconds")
    finally:
        runtime.close()
    out.print(
        f"model {version} active: {hotspots} hotspot(s), trained in {seconds} s",
        markup=False,
        highlight=False,
    )


@app.command("forecast-now")
def forecast_now(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Forecast every hotspot 1-3 h ahead with the active model, store the forecasts and
    raise the risk alerts (what the hourly ``crowd.forecast`` job does)."""
    from sqlalchemy import select

    from safecity.crowd import forecasting, risk
    from safecity.crowd.models import CrowdHotspot
    from safecity.platform.db import utcnow

    runtime = _runtime()
    rows: list[dict[str, object]] = []
    try:
        with transaction(runtime.sessions) as session:
            now = utcnow()
            run = forecasting.run_forecast(session, settings=runtime.settings, now=now)
            assessed = risk.assess_forecasts(session, forecasts=run.forecasts, now=now)
            codes = {h.id: h.code for h in session.scalars(select(CrowdHotspot))}
            levels = {(r.hotspot_id, r.target): r.level for r in assessed.risks}
            for f in run.forecasts:
                rows.append(
                    {
                        "hotspot": codes[f.hotspot_id],
                        "target": f.target.isoformat(),
                        "horizon": f.horizon,
                        "point": round(f.point),
                        "lower": round(f.lower),
                        "upper": round(f.upper),
                        "risk": levels.get((f.hotspot_id, f.target)),
                    }
                )
            summary = (
                f"model {run.model.version}, origin {run.origin:%Y-%m-%d %H:%M} UTC: "
                f"{len(run.forecasts)} forecast(s) in {run.seconds * 1000:.0f} ms, "
                f"{len(assessed.risks)} risk alert(s)"
            )
            missing = sorted(set(run.no_data) | set(assessed.no_data))
    finally:
        runtime.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row))
        return
    table = Table("hotspot", "target (UTC)", "h", "forecast", "interval", "risk")
    for row in rows:
        table.add_row(
            str(row["hotspot"]),
            str(row["target"])[:16].replace("T", " "),
            str(row["horizon"]),
            f"{row['point']:,}",
            f"{row['lower']:,} – {row['upper']:,}",
            str(row["risk"] or ""),
        )
    out.print(table)
    out.print(summary, markup=False, highlight=False)
    if missing:
        out.print(f"no data (no forecast): {', '.join(missing)}", markup=False, highlight=False)
    if run.unknown:
        out.print(
            f"not in the model (retrain): {', '.join(run.unknown)}", markup=False, highlight=False
        )


# --- counts: ``safecity crowd counts import FILE.csv`` (safecity.crowd.counts_cli) --------

app.add_typer(counts_app, name="counts")
app.add_typer(covariates_app, name="covariates")
app.add_typer(events_app, name="events")
