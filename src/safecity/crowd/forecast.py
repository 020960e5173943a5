"""Hourly crowd forecasts per hotspot, 1–3 hours ahead, with split-conformal intervals.

One global LightGBM model per horizon (direct multi-horizon) across all hotspots, the hotspot
a categorical feature. For a forecast made at origin hour ``t`` (the last hour whose count is
known) of the target hour ``τ = t + h``, every feature reads counts at hours ``≤ t`` only:

* recent hours ``y[t], y[t-1], y[t-2], y[t-3]``, the mean of the last 24 h, the change since
  the same hour yesterday and last week, the last 6 h against the same 6 h yesterday and last
  week (is today running hot?);
* the same hour of the target yesterday, two days ago and 1–4 weeks ago, the mean of the
  weekly ones and the mean of the last 7 days at that hour;
* the target's calendar: local hour, weekday, day kind (working day / weekend / public
  holiday, from the holiday table, adjusted working days included) of the target day, of the
  day before and after, and of the days the seasonal lags came from.

Counts and the target are divided by the hotspot's recent level (mean of the last 168 h up to
``t``), so one model serves a 50-people corner and a 5,000-people square and survives regime
changes (lockdowns, recovery). The objective is L1 on that scaled target (``weighted=True``
weights rows by the level, i.e. L1 in people, but LightGBM's weighted L1 is ~10x slower).
Missing counts stay ``NaN`` (LightGBM routes them); rows whose target is missing are not
trained on.

Intervals: split conformal per horizon on a calibration window that the model never trained
on. The score is ``|y - ŷ| / (ŷ + κ·level)`` (normalised, so bands widen with the forecast);
the band for level ``1-α`` is ``ŷ ± q·(ŷ + κ·level)`` with ``q`` the ``⌈(n+1)(1-α)⌉``-th
smallest score, lower end clipped at 0. With ``refit=True`` the model is then retrained on the
fit and calibration windows together (the most recent weeks matter most after a regime change)
and keeps the quantiles of the held-out model: the usual approximation, whose coverage the
backtest measures rather than assumes.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from safecity.crowd.datasets import HOUR, FloatArray, HourlyCounts, zone
from safecity.platform.errors import InvalidInput

IntArray = npt.NDArray[np.int64]
MODEL_FORMAT = "safecity-crowd-forecaster/1"
MAX_HORIZON = 23  # seasonal lags (τ-24) must stay at or before the origin
WEEK = 168

FEATURES = (
    "site",
    "hour",
    "weekday",
    "daykind",
    "daykind_prev",
    "daykind_next",
    "daykind_lag24",
    "daykind_lag168",
    "log_level",
    "y0",
    "y1",
    "y2",
    "y3",
    "mean24",
    "diff24",
    "diff168",
    "s24",
    "s48",
    "s168",
    "s336",
    "s504",
    "s672",
    "s_week_mean",
    "s_day_mean",
    "ratio6_day",
    "ratio6_week",
)
WORKDAY, RESTDAY, HOLIDAY = 0, 1, 2


# --------------------------------------------------------------------------- holidays


def parse_holidays(text: str, *, source: str = "holidays") -> dict[tuple[str, date], str]:
    """Holiday table CSV (``region,date,kind,name,source``) → ``{(region, day): kind}``.

    ``kind`` is ``holiday`` or ``workday`` (an adjusted working day on a weekend, as in the
    mainland China calendar). Every row must cite a source.
    """
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    expected = ["region", "date", "kind", "name", "source"]
    if header != expected:
        raise InvalidInput(f"{source}: header must be {','.join(expected)}")
    table: dict[tuple[str, date], str] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(expected):
            raise InvalidInput(f"{source} line {lineno}: expected 5 fields, got {len(row)}")
        region, raw_day, kind, name, cite = (c.strip() for c in row)
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise InvalidInput(f"{source} line {lineno}: bad date {raw_day!r}") from None
        if kind not in ("holiday", "workday"):
            raise InvalidInput(f"{source} line {lineno}: kind must be holiday or workday")
        if not region or not name or not cite:
            raise InvalidInput(f"{source} line {lineno}: region, name and source are required")
        if (region, day) in table:
            raise InvalidInput(f"{source} line {lineno}: {region} {day} listed twice")
        table[(region, day)] = kind
    return table


@cache
def default_holidays() -> dict[tuple[str, date], str]:
    text = resources.files("safecity.crowd").joinpath("holidays.csv").read_text("utf-8")
    return parse_holidays(text, source="holidays.csv")


@dataclass(frozen=True)
class Calendar:
    """Per grid hour: local hour, weekday and day kinds (target-side, known in advance)."""

    hour: FloatArray
    weekday: FloatArray
    daykind: FloatArray
    daykind_prev: FloatArray
    daykind_next: FloatArray


def build_calendar(
    start: datetime,
    hours: int,
    *,
    tz: str,
    region: str,
    holidays: dict[tuple[str, date], str] | None = None,
) -> Calendar:
    table = default_holidays() if holidays is None else holidays
    tzinfo = zone(tz)

    def kind(day: date) -> int:
        k = table.get((region, day))
        if k == "holiday":
            return HOLIDAY
        if k == "workday":
            return WORKDAY
        return RESTDAY if day.weekday() >= 5 else WORKDAY

    out = np.zeros((5, hours))
    one_day = timedelta(days=1)
    for i in range(hours):
        local = (start + i * HOUR).astimezone(tzinfo)
        day = local.date()
        out[0, i] = local.hour
        out[1, i] = day.weekday()
        out[2, i] = kind(day)
        out[3, i] = kind(day - one_day)
        out[4, i] = kind(day + one_day)
    return Calendar(*out)


# --------------------------------------------------------------------------- features


def _lag(values: FloatArray, idx: IntArray, sites: IntArray) -> FloatArray:
    ok = idx >= 0
    out = np.full(idx.shape, np.nan)
    out[ok] = values[idx[ok], sites[ok]]
    return out


def _window_mean(
    csum: FloatArray, ccount: FloatArray, t: IntArray, sites: IntArray, width: int
) -> FloatArray:
    """Mean of observed counts in hours (t-width, t] (cumulative sums with a leading zero row)."""
    hi = t + 1
    lo = np.maximum(hi - width, 0)
    total = csum[hi, sites] - csum[lo, sites]
    n = ccount[hi, sites] - ccount[lo, sites]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def build_features(
    values: FloatArray,
    calendar: Calendar,
    origins: IntArray,
    sites: IntArray,
    horizon: int,
) -> tuple[FloatArray, FloatArray]:
    """Feature matrix for targets ``origins + horizon`` and each row's level (the scale).

    Reads ``values`` only at rows ``<= origin`` for each row (no leakage); the calendar is
    read at the target hour (known in advance).
    """
    if not 1 <= horizon <= MAX_HORIZON:
        raise InvalidInput(f"horizon must be 1..{MAX_HORIZON} hours")
    if origins.size and (origins.min() < 0 or origins.max() >= values.shape[0]):
        raise InvalidInput("forecast origin outside the counts")
    past = values
    zero = np.zeros((1, values.shape[1]))
    csum = np.vstack([zero, np.cumsum(np.nan_to_num(past, nan=0.0), axis=0)])
    ccount = np.vstack([zero, np.cumsum(~np.isnan(past), axis=0).astype(np.float64)])
    t = origins
    target = t + horizon
    level = _window_mean(csum, ccount, t, sites, WEEK)
    level = np.where(np.isnan(level), _window_mean(csum, ccount, t, sites, 4 * WEEK), level)
    scale = np.maximum(np.nan_to_num(level, nan=1.0), 1.0)

    def lag_t(k: int) -> FloatArray:
        return _lag(past, t - k, sites)

    def lag_target(k: int) -> FloatArray:
        return _lag(past, target - k, sites)

    y0 = lag_t(0)
    seasonal = {k: lag_target(k) for k in (24, 48, 168, 336, 504, 672)}
    weekly = np.vstack([seasonal[k] for k in (168, 336, 504, 672)])
    observed = (~np.isnan(weekly)).sum(axis=0)
    week_mean = np.where(observed > 0, np.nansum(weekly, axis=0) / np.maximum(observed, 1), np.nan)

    daily = np.vstack([lag_target(24 * k) for k in range(1, 8)])
    seen = (~np.isnan(daily)).sum(axis=0)
    day_mean = np.where(seen > 0, np.nansum(daily, axis=0) / np.maximum(seen, 1), np.nan)

    def recent(shift: int) -> FloatArray:
        at = t - shift
        out = np.full(t.shape, np.nan)
        ok = at >= 0
        out[ok] = _window_mean(csum, ccount, at[ok], sites[ok], 6)
        return out

    now6 = recent(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio_day = now6 / np.maximum(recent(24), 1.0)
        ratio_week = now6 / np.maximum(recent(WEEK), 1.0)

    def cal(arr: FloatArray, idx: IntArray) -> FloatArray:
        return arr[np.clip(idx, 0, arr.shape[0] - 1)]

    cols = [
        sites.astype(np.float64),
        cal(calendar.hour, target),
        cal(calendar.weekday, target),
        cal(calendar.daykind, target),
        cal(calendar.daykind_prev, target),
        cal(calendar.daykind_next, target),
        cal(calendar.daykind, target - 24),
        cal(calendar.daykind, target - WEEK),
        np.log1p(scale),
        y0 / scale,
        lag_t(1) / scale,
        lag_t(2) / scale,
        lag_t(3) / scale,
        _window_mean(csum, ccount, t, sites, 24) / scale,
        (y0 - lag_t(24)) / scale,
        (y0 - lag_t(WEEK)) / scale,
        *(seasonal[k] / scale for k in (24, 48, 168, 336, 504, 672)),
        week_mean / scale,
        day_mean / scale,
        ratio_day,
        ratio_week,
    ]
    return np.column_stack(cols), scale


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ForecastConfig:
    horizons: tuple[int, ...] = (1, 2, 3)
    level: float = 0.9
    levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    calibration_days: int = 28
    kappa: float = 0.25
    objective: str = "l1"
    weighted: bool = False
    refit: bool = True
    num_rounds: int = 400
    learning_rate: float = 0.1
    num_leaves: int = 255
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    threads: int = 2
    seed: int = 7

    def lgb_params(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "verbose": -1,
        }


@dataclass(frozen=True)
class Forecast:
    site: str
    origin: datetime
    target: datetime
    horizon: int
    point: float
    lower: float
    upper: float
    level: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["origin"] = self.origin.isoformat()
        d["target"] = self.target.isoformat()
        return d


@dataclass
class Prediction:
    """Forecasts for many origins × all sites at one horizon."""

    point: FloatArray
    lower: FloatArray
    upper: FloatArray


@dataclass
class HorizonModel:
    booster: lgb.Booster
    quantiles: dict[float, float]
    calibration_rows: int
    fit_rows: int
    fit_seconds: float


@dataclass
class FitReport:
    horizons: dict[int, dict[str, float]] = field(default_factory=dict)


Progress = Callable[[str], None]


def conformal_quantile(scores: FloatArray, level: float) -> float:
    """The ``⌈(n+1)·level⌉``-th smallest score (∞ when the window is too small)."""
    n = scores.size
    k = math.ceil((n + 1) * level)
    if n == 0 or k > n:
        return math.inf
    return float(np.partition(scores, k - 1)[k - 1])


class Forecaster:
    """The one forecaster the product and the benchmarks share."""

    def __init__(self, config: ForecastConfig | None = None) -> None:
        self.config = config or ForecastConfig()
        for h in self.config.horizons:
            if not 1 <= h <= MAX_HORIZON:
                raise InvalidInput(f"horizon must be 1..{MAX_HORIZON} hours")
        self.models: dict[int, HorizonModel] = {}
        self.sites: tuple[str, ...] = ()
        self.tz = "UTC"
        self.region = ""
        self.trained_until: datetime | None = None

    # ----------------------------------------------------------------- training

    def fit(
        self,
        counts: HourlyCounts,
        *,
        end: int | None = None,
        calibration_start: int | None = None,
        progress: Progress | None = None,
    ) -> FitReport:
        """Train on target hours before ``calibration_start``, calibrate on the rest up to
        ``end`` (row indices; defaults: all rows, the last ``calibration_days`` days)."""
        end = counts.hours if end is None else min(end, counts.hours)
        cal_start = (
            end - self.config.calibration_days * 24
            if calibration_start is None
            else calibration_start
        )
        if cal_start <= WEEK or cal_start >= end:
            raise InvalidInput(
                "not enough history: need more than a week before the calibration window "
                "and a non-empty calibration window"
            )
        self.sites, self.tz, self.region = counts.sites, counts.tz, counts.region
        self.trained_until = counts.time_at(end - 1)
        values = counts.values[:end]
        calendar = build_calendar(
            counts.start, end + MAX_HORIZON + 1, tz=counts.tz, region=counts.region
        )
        n_sites = len(counts.sites)
        report = FitReport()
        for h in self.config.horizons:
            started = time.perf_counter()
            origins = np.arange(0, end - h, dtype=np.int64)
            grid_t = np.repeat(origins, n_sites)
            grid_s = np.tile(np.arange(n_sites, dtype=np.int64), origins.size)
            y = values[grid_t + h, grid_s]
            keep = ~np.isnan(y)
            grid_t, grid_s, y = grid_t[keep], grid_s[keep], y[keep]
            x, scale = build_features(values, calendar, grid_t, grid_s, h)
            in_fit = grid_t + h < cal_start
            if not in_fit.any() or in_fit.all():
                raise InvalidInput("no observed targets in the fit or the calibration window")
            if progress:
                progress(f"h={h}: fitting on {int(in_fit.sum()):,} rows")
            data = lgb.Dataset(
                x[in_fit],
                label=y[in_fit] / scale[in_fit],
                weight=scale[in_fit] if self.config.weighted else None,
                feature_name=list(FEATURES),
                categorical_feature=["site"],
                free_raw_data=True,
            )
            booster = lgb.train(
                self.config.lgb_params(), data, num_boost_round=self.config.num_rounds
            )
            cal = ~in_fit
            point = np.maximum(booster.predict(x[cal]) * scale[cal], 0.0)
            sigma = point + self.config.kappa * scale[cal]
            scores = np.abs(y[cal] - point) / sigma
            quantiles = {lv: conformal_quantile(scores, lv) for lv in self.config.levels}
            if self.config.level not in quantiles:
                quantiles[self.config.level] = conformal_quantile(scores, self.config.level)
            if self.config.refit:
                if progress:
                    progress(f"h={h}: refitting on fit + calibration ({y.size:,} rows)")
                booster = lgb.train(
                    self.config.lgb_params(),
                    lgb.Dataset(
                        x,
                        label=y / scale,
                        weight=scale if self.config.weighted else None,
                        feature_name=list(FEATURES),
                        categorical_feature=["site"],
                    ),
                    num_boost_round=self.config.num_rounds,
                )
            seconds = time.perf_counter() - started
            self.models[h] = HorizonModel(
                booster, quantiles, int(cal.sum()), int(in_fit.sum()), seconds
            )
            report.horizons[h] = {
                "fit_rows": float(in_fit.sum()),
                "calibration_rows": float(cal.sum()),
                "seconds": seconds,
                **{f"q{lv:g}": q for lv, q in quantiles.items()},
            }
            if progress:
                progress(f"h={h}: done in {seconds:.1f} s")
        return report

    # ----------------------------------------------------------------- prediction

    def _check(self, counts: HourlyCounts) -> FloatArray:
        if not self.models:
            raise InvalidInput("the forecaster is not trained")
        unknown = [s for s in counts.sites if s not in self.sites]
        if unknown:
            raise InvalidInput(f"unknown hotspot {unknown[0]!r} (not in the trained model)")
        if counts.sites == self.sites:
            return counts.values
        values = np.full((counts.hours, len(self.sites)), np.nan)
        for j, name in enumerate(counts.sites):
            values[:, self.sites.index(name)] = counts.values[:, j]
        return values

    def predict(
        self,
        counts: HourlyCounts,
        origins: IntArray,
        horizon: int,
        *,
        level: float | None = None,
        calendar: Calendar | None = None,
    ) -> Prediction:
        """Point and interval for every origin row × every trained hotspot."""
        values = self._check(counts)
        model = self.models.get(horizon)
        if model is None:
            raise InvalidInput(f"no model for horizon {horizon} h")
        lv = self.config.level if level is None else level
        if lv not in model.quantiles:
            raise InvalidInput(f"no calibration for level {lv:g}")
        if calendar is None:
            calendar = build_calendar(
                counts.start, counts.hours + MAX_HORIZON + 1, tz=self.tz, region=self.region
            )
        n_sites = len(self.sites)
        grid_t = np.repeat(origins.astype(np.int64), n_sites)
        grid_s = np.tile(np.arange(n_sites, dtype=np.int64), origins.size)
        x, scale = build_features(values, calendar, grid_t, grid_s, horizon)
        point = np.maximum(np.asarray(model.booster.predict(x)) * scale, 0.0)
        half = model.quantiles[lv] * (point + self.config.kappa * scale)
        shape = (origins.size, n_sites)
        return Prediction(
            point.reshape(shape),
            np.maximum(point - half, 0.0).reshape(shape),
            (point + half).reshape(shape),
        )

    def forecast(self, counts: HourlyCounts, *, level: float | None = None) -> list[Forecast]:
        """Forecasts for every hotspot and horizon from the last hour of ``counts``."""
        if not self.models:
            raise InvalidInput("the forecaster is not trained")
        if counts.hours == 0:
            raise InvalidInput("no counts to forecast from")
        origin = counts.hours - 1
        lv = self.config.level if level is None else level
        calendar = build_calendar(
            counts.start, counts.hours + MAX_HORIZON + 1, tz=self.tz, region=self.region
        )
        out: list[Forecast] = []
        origin_time = counts.time_at(origin)
        for h in sorted(self.models):
            pred = self.predict(
                counts, np.array([origin], dtype=np.int64), h, level=lv, calendar=calendar
            )
            for j, name in enumerate(self.sites):
                out.append(
                    Forecast(
                        site=name,
                        origin=origin_time,
                        target=origin_time + h * HOUR,
                        horizon=h,
                        point=float(pred.point[0, j]),
                        lower=float(pred.lower[0, j]),
                        upper=float(pred.upper[0, j]),
                        level=lv,
                    )
                )
        return out

    # ----------------------------------------------------------------- persistence

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "config": asdict(self.config),
            "sites": list(self.sites),
            "tz": self.tz,
            "region": self.region,
            "trained_until": self.trained_until.isoformat() if self.trained_until else None,
            "features": list(FEATURES),
            "horizons": {
                str(h): {
                    "quantiles": {f"{lv:g}": q for lv, q in m.quantiles.items()},
                    "calibration_rows": m.calibration_rows,
                    "fit_rows": m.fit_rows,
                    "fit_seconds": m.fit_seconds,
                    "model": m.booster.model_to_string(),
                }
                for h, m in self.models.items()
            },
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Forecaster:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"no such model file: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidInput(f"{path.name} is not a forecaster model file") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise InvalidInput(f"{path.name} is not a {MODEL_FORMAT} model file")
        if data.get("features") != list(FEATURES):
            raise InvalidInput(f"{path.name} was trained with other features; retrain")
        raw = dict(data["config"])
        for key in ("horizons", "levels"):
            raw[key] = tuple(raw[key])
        self = cls(ForecastConfig(**raw))
        self.sites = tuple(data["sites"])
        self.tz = data["tz"]
        self.region = data["region"]
        until = data.get("trained_until")
        self.trained_until = datetime.fromisoformat(until).astimezone(UTC) if until else None
        for h, m in data["horizons"].items():
            self.models[int(h)] = HorizonModel(
                lgb.Booster(model_str=m["model"]),
                {float(k): float(v) for k, v in m["quantiles"].items()},
                int(m["calibration_rows"]),
                int(m["fit_rows"]),
                float(m["fit_seconds"]),
            )
        return self


def horizons_arg(text: str) -> tuple[int, ...]:
    """``"1,3"`` → ``(1, 3)`` with clear errors."""
    try:
        out = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise InvalidInput(f"horizons must be comma-separated hours, got {text!r}") from None
    if not out or any(not 1 <= h <= MAX_HORIZON for h in out):
        raise InvalidInput(f"horizons must be 1..{MAX_HORIZON}, got {text!r}")
    return out
