"""Crowd forecasting on the Melbourne pedestrian benchmarks (issue 8).

    .venv/bin/python benchmarks/crowd_melbourne.py [--datasets melbourne-2021,melbourne-2015]
        [--rounds N] [--output benchmarks/results/crowd_melbourne.json]

Runs each data set's protocol (README in ``$SAFECITY_BENCH_DATA/crowd/<folder>``, default
root ``/work/shared/benchmarks``) through :func:`safecity.crowd.backtest.run_backtest`, i.e.
the product's :class:`~safecity.crowd.forecast.Forecaster` (no benchmark-only model): train on
the training window, calibrate the conformal intervals on the validation window, forecast
every test hour at t+1 and t+3 from the data up to the origin.

Reported per horizon: MAE, RMSE, WAPE, MAPE (actual >= 50), interval coverage at 50/80/90/95 %
(all test hours and hours above the alert threshold), mean width, and the alert rule
(forecast vs each site's training 99th percentile) for the point forecast and for the upper
bound of each band; train time; forecast time for all sites (the hourly job). The project's
baselines from the READMEs are stored next to the figures for comparison. Writes JSON with
figures, command, machine, date and library versions.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safecity.crowd.backtest import run_backtest
from safecity.crowd.datasets import load_benchmark
from safecity.crowd.forecast import ForecastConfig

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="melbourne-2021,melbourne-2015")
    parser.add_argument("--rounds", type=int, default=ForecastConfig().num_rounds)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    config = ForecastConfig(horizons=(1, 3), num_rounds=args.rounds)
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
            "note": "2-core machine shared with other work; timings are wall clock",
        },
        "versions": versions(),
        "total_seconds": round(time.perf_counter() - started, 1),
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
