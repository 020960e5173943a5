"""Crowd forecasting on the Melbourne pedestrian benchmarks (issue 8).

    .venv/bin/python benchmarks/crowd_melbourne.py [--config product|default]
        [--datasets melbourne-2021,melbourne-2015] [--rounds N (default config only)]
        [--compare-with PREVIOUS.json] [--output benchmarks/results/crowd_melbourne.json]

Runs each data set's protocol (README in ``$SAFECITY_BENCH_DATA/crowd/<folder>``, default
root ``/work/shared/benchmarks``) through :func:`safecity.crowd.backtest.run_backtest`, i.e.
the product's :class:`~safecity.crowd.forecast.Forecaster` (no benchmark-only model): train on
the training window, calibrate the conformal intervals on the validation window, forecast
every test hour at t+1 and t+3 from the data up to the origin.

``--config product`` (the default) scores the model that ships: the hyper-parameters of
:data:`safecity.crowd.forecasting.PRODUCT_CONFIG`, with only the horizons replaced by the
benchmark's (1, 3). ``--config default`` scores :class:`ForecastConfig`'s defaults (larger
trees, more rounds), kept to compare with earlier runs; it is not what the product trains.
Every field of the config used is written to the results. The calibration window is the
data set's validation window in both cases (``calibration_days`` does not apply here).
``--compare-with`` copies the summaries and config of an earlier results file (read before
the output is overwritten, so it may be the same path) into ``"compared_with"``.

Reported per horizon: MAE, RMSE, WAPE, MAPE (actual >= 50), interval coverage at 50/80/90/95 %
(all test hours and hours above the alert threshold), mean width, and the alert rule
(forecast vs each site's training 99th percentile) for the point forecast and for the upper
bound of each band; train time; forecast time for all sites (the hourly job). The project's
baselines from the READMEs are stored next to the figures for comparison. Writes JSON with
figures, command, machine, date and library versions.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.crowd.backtest import run_backtest
from safecity.crowd.datasets import load_benchmark
from safecity.crowd.forecast import ForecastConfig
from safecity.crowd.forecasting import PRODUCT_CONFIG

HORIZONS = (1, 3)
RESULTS = Path(__file__).resolve().parent / "results" / "crowd_melbourne.json"

BASELINES: dict[str, dict[str, Any]] = {
    "melbourne-2021": {
        "source": "melbourne-pedestrian-2021-2022/README.md, LightGBM global lags + calendar",
        "wape_h1": 0.117,
        "wape_h3": 0.146,
        "mae_h1": 44.4,
        "mae_h3": 55.5,
        "alert_recall_h1": 0.63,
        "alert_precision_h1": 0.83,
        "fit_seconds_per_horizon": "225-235",
        "targets": {
            "wape_h1": 0.10,
            "wape_h3": 0.13,
            "alert": "recall >= 0.75 @ precision >= 0.83",
        },
    },
    "melbourne-2015": {
        "source": "melbourne-pedestrian-2015-2016/README.md, LightGBM global lags + calendar",
        "wape_h1": 0.113,
        "wape_h3": 0.150,
        "mae_h1": 89.2,
        "mae_h3": 118.0,
        "alert_recall_h1": 0.51,
        "alert_precision_h1": 0.71,
    },
}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("safecity", "lightgbm", "numpy", "scipy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "?"
    return out


def summary(result: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = {}
    for h, r in result["horizons"].items():
        band = r["interval_0.9"]
        s[f"h{h}"] = {
            "wape": round(r["wape"], 4),
            "mae": round(r["mae"], 1),
            "coverage_90": round(band["coverage"], 3),
            "coverage_90_above_threshold": band["coverage_above_threshold"],
            "alert_point_recall_precision": [
                round(r["alert_point"]["recall"], 3),
                round(r["alert_point"]["precision"], 3),
            ],
            "alert_upper90_recall_precision": [
                round(band["alert_upper"]["recall"], 3),
                round(band["alert_upper"]["precision"], 3),
            ],
            "alert_upper50_recall_precision": [
                round(r["interval_0.5"]["alert_upper"]["recall"], 3),
                round(r["interval_0.5"]["alert_upper"]["precision"], 3),
            ],
        }
    s["train_seconds"] = round(result["train_seconds"], 1)
    s["forecast_all_sites_ms"] = round(result["forecast_all_sites_seconds"] * 1000, 1)
    return s


def choose_config(name: str, rounds: int | None) -> ForecastConfig:
    """The product's config (horizons replaced, nothing else) or ForecastConfig's defaults."""
    if name == "product":
        if rounds is not None:
            raise SystemExit("--rounds applies to --config default only (product = as shipped)")
        return dataclasses.replace(PRODUCT_CONFIG, horizons=HORIZONS)
    base = ForecastConfig(horizons=HORIZONS)
    return base if rounds is None else dataclasses.replace(base, num_rounds=rounds)


def earlier(path: Path) -> dict[str, Any]:
    """Date, command, summaries and config of an earlier results file, for comparison."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--compare-with {path}: {exc}") from None
    runs = doc.get("runs", {})
    return {
        "file": str(path),
        "date": doc.get("date"),
        "command": doc.get("command"),
        "config_name": doc.get("config_name"),
        "total_seconds": doc.get("total_seconds"),
        "runs": {
            name: {"summary": run.get("summary"), "config": run.get("result", {}).get("config")}
            for name, run in runs.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", choices=("product", "default"), default="product")
    parser.add_argument("--datasets", default="melbourne-2021,melbourne-2015")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--compare-with", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    config = choose_config(args.config, args.rounds)
    compared = earlier(args.compare_with) if args.compare_with else None
    print(f"config {args.config}: {json.dumps(dataclasses.asdict(config))}", flush=True)
    host = machine()
    host["load_avg_1_5_15_start"] = host.pop("load_avg_1_5_15")
    runs: dict[str, Any] = {}
    started = time.perf_counter()
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        print(f"== {name}", flush=True)
        bench = load_benchmark(name)
        result = run_backtest(bench, config=config, progress=lambda m: print("  " + m, flush=True))
        runs[name] = {
            "summary": summary(result),
            "baseline": BASELINES.get(name),
            "result": result,
        }
        print(json.dumps(runs[name]["summary"], indent=2), flush=True)

    doc = {
        "benchmark": "crowd_melbourne",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            **host,
            "load_avg_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
            "note": "2-core machine shared with other work; timings are wall clock",
        },
        "versions": versions(),
        "config_name": args.config,
        "config": dataclasses.asdict(config),
        "total_seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    if compared is not None:
        doc["compared_with"] = compared
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
