"""Backtest the shipped forecaster on a benchmark's protocol (see the data set's README).

Train on the training window, calibrate the intervals on the validation window (the model
never fits it), then forecast every test hour at each horizon from the data up to the origin.
Scored: observed targets on hotspot-days with a non-zero total (outage days are blanked by the
loader). The alert rule that ships: "the upper bound of the interval is above the hotspot's
99th percentile of training counts"; it is scored against "the actual count is above it".
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from safecity.crowd.datasets import Benchmark, FloatArray
from safecity.crowd.forecast import ForecastConfig, Forecaster, Progress, build_calendar

ALERT_PERCENTILE = 99.0


def point_metrics(actual: FloatArray, point: FloatArray) -> dict[str, float]:
    err = point - actual
    big = actual >= 50
    return {
        "rows": float(actual.size),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "wape": float(np.sum(np.abs(err)) / np.sum(actual)),
        "mape_ge50": float(np.mean(np.abs(err[big]) / actual[big])) if big.any() else np.nan,
    }


def alert_metrics(actual_alert: np.ndarray, raised: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(actual_alert & raised))
    fp = int(np.sum(~actual_alert & raised))
    fn = int(np.sum(actual_alert & ~raised))
    return {
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "true_alerts": float(tp + fn),
        "raised": float(tp + fp),
    }


def run_backtest(
    bench: Benchmark,
    *,
    config: ForecastConfig | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    config = config or ForecastConfig(horizons=(1, 3))
    counts = bench.counts
    cal_start = counts.local_midnight_index(bench.calibration_start)
    test_start = counts.local_midnight_index(bench.test_start)
    test_end = counts.local_midnight_index(bench.test_end) + 24
    values = counts.values

    thresholds = np.nanpercentile(values[:cal_start], ALERT_PERCENTILE, axis=0)

    forecaster = Forecaster(config)
    started = time.perf_counter()
    fit = forecaster.fit(counts, end=test_start, calibration_start=cal_start, progress=progress)
    train_seconds = time.perf_counter() - started

    calendar = build_calendar(counts.start, counts.hours + 24, tz=counts.tz, region=counts.region)
    horizons: dict[str, Any] = {}
    for h in config.horizons:
        origins = np.arange(test_start - h, test_end - h, dtype=np.int64)
        actual = values[origins + h]
        mask = ~np.isnan(actual)
        y = actual[mask]
        thr = np.broadcast_to(thresholds, actual.shape)[mask]
        above = y > thr
        result: dict[str, Any] = {}
        for lv in config.levels:
            pred = forecaster.predict(counts, origins, h, level=lv, calendar=calendar)
            point, lower, upper = pred.point[mask], pred.lower[mask], pred.upper[mask]
            inside = (y >= lower) & (y <= upper)
            if lv == config.level:
                result.update(point_metrics(y, point))
                result["alert_point"] = alert_metrics(above, point > thr)
            result[f"interval_{lv:g}"] = {
                "coverage": float(inside.mean()),
                "coverage_above_threshold": float(inside[above].mean()) if above.any() else None,
                "mean_width": float(np.mean(upper - lower)),
                "alert_upper": alert_metrics(above, upper > thr),
            }
        # history-only references computed on the same rows, as a scoring sanity check
        week = _shifted(values, origins + h - 168)[mask]
        last = _shifted(values, origins)[mask]
        ok_w, ok_l = ~np.isnan(week), ~np.isnan(last)
        result["reference_same_hour_last_week_wape"] = float(
            np.sum(np.abs(week[ok_w] - y[ok_w])) / np.sum(y[ok_w])
        )
        result["reference_persistence_wape"] = float(
            np.sum(np.abs(last[ok_l] - y[ok_l])) / np.sum(y[ok_l])
        )
        horizons[str(h)] = result
        if progress:
            progress(f"h={h}: WAPE {result['wape']:.2%} on {int(mask.sum()):,} rows")

    # the product's hourly job: forecast every hotspot and horizon from the latest hour
    history = counts.head(test_start)
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        forecaster.forecast(history)
        timings.append(time.perf_counter() - t0)

    return {
        "dataset": bench.name,
        "sites": len(counts.sites),
        "hours": counts.hours,
        "gaps_marked": bench.report.gaps,
        "outage_cells_blanked": bench.report.outage_cells,
        "dst_duplicates_dropped": bench.report.dst_duplicates_dropped,
        "windows": {
            "fit_targets_before": counts.time_at(cal_start).isoformat(),
            "calibration": [
                counts.time_at(cal_start).isoformat(),
                counts.time_at(test_start).isoformat(),
            ],
            "test": [counts.time_at(test_start).isoformat(), counts.time_at(test_end).isoformat()],
        },
        "alert_threshold": f"per-site p{ALERT_PERCENTILE:g} of training counts",
        "horizons": horizons,
        "train_seconds": train_seconds,
        "train_seconds_per_horizon": {str(h): v["seconds"] for h, v in fit.horizons.items()},
        "forecast_all_sites_seconds": statistics.median(timings),
        "config": asdict(config),
    }


def _shifted(values: FloatArray, idx: np.ndarray) -> FloatArray:
    out = np.full((idx.size, values.shape[1]), np.nan)
    ok = idx >= 0
    out[ok] = values[idx[ok]]
    return out
