"""The product's forecasting path: train a model version from the database, forecast every
hour, store the forecasts.

The model is :class:`safecity.crowd.forecast.Forecaster`, the same one the benchmarks score
(``safecity crowd backtest``); this module only feeds it the hotspots' counts from the
database and keeps its versions.

* :func:`train` reads the counts of every active hotspot over the last ``weeks`` weeks
  (gaps and outages stay ``NaN``), fits one LightGBM model per horizon (1, 2, 3 h) with
  split-conformal intervals, writes the artifact to
  ``var_dir/crowd/models/<version>.json``, and records a :class:`CrowdModel` row (version =
  UTC timestamp + the first 8 hex digits of the artifact's SHA-256; the full SHA-256, the
  horizons, hotspots, config and fit metrics) which becomes the one active model. Audited.
* :func:`forecast_now` (the hourly job) loads the active model, **refuses an artifact whose
  SHA-256 differs from the row's** (a changed file is never used), takes the last complete
  hour as the origin and stores a :class:`CrowdForecast` per hotspot and horizon
  (idempotent: a re-run of the same hour replaces the rows). A hotspot with no count in the
  last :data:`~safecity.crowd.risk.RECENT_HOURS` complete hours gets **no** forecast (a
  forecast from nothing would be made up); :func:`run_forecast` says which ones.

Time zones: the Forecaster has one time zone and holiday region (its calendar features), so
one model serves hotspots of one ``(timezone, region)``. A deployment is one city; training
over hotspots of mixed zones is refused with the zones listed rather than silently using
the wrong calendar for some of them (one model per zone would need one active model per
zone; not needed yet).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safecity.crowd.counts import hourly_counts
from safecity.crowd.datasets import HOUR, HourlyCounts
from safecity.crowd.forecast import WEEK, ForecastConfig, Forecaster
from safecity.crowd.models import CrowdForecast, CrowdHotspot, CrowdModel
from safecity.crowd.risk import RECENT_HOURS
from safecity.platform.db import new_id
from safecity.platform.errors import ConfigurationError, InvalidInput, NotFound
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.settings import Settings

log = logging.getLogger("safecity.crowd.forecasting")

HORIZONS = (1, 2, 3)
DEFAULT_WEEKS = 12
MAX_WEEKS = 104
PRODUCT_CONFIG = ForecastConfig(
    horizons=HORIZONS, calibration_days=14, num_rounds=200, num_leaves=31, min_data_in_leaf=5
)
"""The shipped model's settings, sized for a city's deployment: tens of hotspots and weeks to
months of counts, not the benchmarks' 55 sensors × years. A weekly event (a Saturday light
show) gives one row per hotspot and week, so leaves of at least 50 rows (the benchmark
default) cannot hold it and the forecast of the peak stays near the usual evening; leaves of
5 rows in 31-leaf trees learn it from a few weeks (tests/crowd/test_risk.py's demo). The
conformal intervals are calibrated on held-out weeks either way, so the smaller leaves cost
width, not coverage. 14 calibration days: a new deployment has weeks, not a year, of counts."""
LOOKBACK_HOURS = 4 * WEEK + 8
"""Counts a forecast reads before its origin: the 4-week seasonal lag and the 6-hour window
a week back (see :func:`safecity.crowd.forecast.build_features`)."""
MODEL_RECORD = "crowd_model"
_cache: dict[str, Forecaster] = {}
_CACHE_SIZE = 4


def models_dir(settings: Settings) -> Path:
    return settings.var_dir / "crowd" / "models"


def last_complete_hour(now: datetime) -> datetime:
    """The start of the last hour that has ended at ``now`` (the forecast origin)."""
    if now.tzinfo is None:
        raise InvalidInput("now must carry a time zone")
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - HOUR


def min_history_hours(config: ForecastConfig) -> int:
    """Hours of counts training needs: a week of lags, a week to fit, the calibration days."""
    return 2 * WEEK + config.calibration_days * 24


# --------------------------------------------------------------------------- counts


def load_counts(
    session: Session,
    *,
    hotspots: Sequence[CrowdHotspot],
    start: datetime,
    end: datetime,
    sites: Sequence[str] | None = None,
    tz: str = "UTC",
    region: str = "",
) -> HourlyCounts:
    """Counts of ``hotspots`` on exactly the grid ``[start, end)`` with columns ``sites``
    (hotspot codes; default: the hotspots' codes), ``NaN`` wherever there is no count
    (:func:`safecity.crowd.counts.hourly_counts`: gap and outage hours are ``NaN``)."""
    raw = hourly_counts(session, hotspots=hotspots, start=start, end=end)
    names = tuple(sites) if sites is not None else tuple(h.code for h in hotspots)
    hours = int((end - start) / HOUR)
    values = np.full((hours, len(names)), np.nan)
    offset = raw.index_of(start) if raw.hours else 0
    lo, hi = max(offset, 0), min(offset + hours, raw.hours)
    for k, code in enumerate(raw.sites):
        if code in names and hi > lo:
            values[lo - offset : hi - offset, names.index(code)] = raw.values[lo:hi, k]
    return HourlyCounts(sites=names, start=start, values=values, tz=tz, region=region)


def _active_hotspots(session: Session) -> list[CrowdHotspot]:
    return list(
        session.scalars(
            select(CrowdHotspot).where(CrowdHotspot.active.is_(True)).order_by(CrowdHotspot.code)
        )
    )


# --------------------------------------------------------------------------- training


def _finite(value: Any) -> Any:
    """JSON columns take no NaN/Infinity (PostgreSQL rejects them): map them to None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def train(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    weeks: int = DEFAULT_WEEKS,
    config: ForecastConfig | None = None,
    principal: Principal = audit.SYSTEM,
) -> CrowdModel:
    """Train, save and activate a new model version on the last ``weeks`` weeks of counts.

    :class:`InvalidInput` when there are no active hotspots, they span several time zones
    or holiday regions, or the history is too short (the message gives the hours needed and
    present). Nothing is written then.
    """
    config = config or PRODUCT_CONFIG
    needed = min_history_hours(config)
    if not 1 <= weeks <= MAX_WEEKS:
        raise InvalidInput(f"weeks must be 1..{MAX_WEEKS}")
    if weeks * WEEK < needed:
        raise InvalidInput(
            f"not enough history to train: {needed} hours of counts needed, "
            f"a window of {weeks} week(s) holds {weeks * WEEK}",
            needed=needed,
            present=weeks * WEEK,
        )
    hotspots = _active_hotspots(session)
    if not hotspots:
        raise InvalidInput("no active hotspots to train a crowd model on")
    zones = sorted({(h.timezone, h.region) for h in hotspots})
    if len(zones) > 1:
        listed = ", ".join(f"{tz}/{region or '-'}" for tz, region in zones)
        raise InvalidInput(
            f"active hotspots span several time zones or holiday regions ({listed}); "
            "one model serves one zone"
        )
    tz, region = zones[0]
    end = last_complete_hour(now) + HOUR
    start = end - weeks * WEEK * HOUR
    counts = load_counts(session, hotspots=hotspots, start=start, end=end, tz=tz, region=region)
    observed = ~np.isnan(counts.values)
    seen = [bool(x) for x in np.asarray(observed.any(axis=0)).ravel()]
    skipped = [code for code, ok in zip(counts.sites, seen, strict=True) if not ok]
    rows = np.flatnonzero(observed.any(axis=1))
    present = 0 if rows.size == 0 else counts.hours - int(rows[0])
    if present < needed:
        raise InvalidInput(
            f"not enough history to train: {needed} hours of counts needed "
            f"({needed // 24} days), {present} present",
            needed=needed,
            present=present,
        )
    keep = [j for j, ok in enumerate(seen) if ok]
    data = HourlyCounts(
        sites=tuple(counts.sites[j] for j in keep),
        start=counts.time_at(int(rows[0])),
        values=counts.values[int(rows[0]) :, keep],
        tz=tz,
        region=region,
    )
    forecaster = Forecaster(config)
    started = time.perf_counter()
    report = forecaster.fit(data)
    seconds = time.perf_counter() - started
    for h, m in forecaster.models.items():
        if not math.isfinite(m.quantiles[config.level]):
            raise InvalidInput(
                f"the calibration window is too small for {config.level:.0%} intervals at "
                f"{h} h; more history is needed"
            )

    folder = models_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / f".{new_id()}.tmp"
    forecaster.save(scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    version = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{digest[:8]}"
    relative = Path("crowd") / "models" / f"{version}.json"
    os.replace(scratch, settings.var_dir / relative)

    session.execute(update(CrowdModel).where(CrowdModel.active.is_(True)).values(active=False))
    model = session.scalar(select(CrowdModel).where(CrowdModel.version == version))
    if model is None:  # the same data trained twice in one second gives the same file
        model = CrowdModel(
            id=new_id(),
            version=version,
            trained_at=now.astimezone(UTC),
            horizons=list(config.horizons),
            hotspots=list(data.sites),
            config=_finite(asdict(config)),
            metrics=_finite(
                {
                    "horizons": {str(h): r for h, r in report.horizons.items()},
                    "hours": data.hours,
                    "observed": int(observed.sum()),
                    "gaps": data.gaps,
                    "train_seconds": round(seconds, 3),
                    "trained_until": data.time_at(data.hours - 1).isoformat(),
                    "skipped_no_counts": skipped,
                    "tz": tz,
                    "region": region,
                }
            ),
            path=relative.as_posix(),
            sha256=digest,
            active=True,
        )
        session.add(model)
    model.active = True
    session.flush()
    audit.record(
        session,
        principal=principal,
        action="crowd.model.train",
        target_type=MODEL_RECORD,
        target_id=model.id,
        detail={
            "version": version,
            "sha256": digest,
            "hotspots": len(data.sites),
            "hours": data.hours,
            "seconds": round(seconds, 1),
        },
    )
    log.info("crowd model %s trained on %d hotspot(s) in %.1f s", version, len(data.sites), seconds)
    return model


# --------------------------------------------------------------------------- forecasting


def active_model(session: Session) -> CrowdModel:
    model = session.scalar(select(CrowdModel).where(CrowdModel.active.is_(True)))
    if model is None:
        raise NotFound("no active crowd model: run `safecity crowd retrain`")
    return model


def load_model(settings: Settings, model: CrowdModel) -> Forecaster:
    """The model's Forecaster, after checking the artifact's SHA-256 against the row.

    A missing or changed artifact is refused (:class:`ConfigurationError`, logged): the
    forecasts must come from the version the row names.
    """
    path = settings.var_dir / model.path
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.error("crowd model %s: artifact %s is missing", model.version, path)
        raise ConfigurationError(
            f"crowd model {model.version}: artifact missing; retrain"
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != model.sha256:
        log.error(
            "crowd model %s: artifact %s has SHA-256 %s, the row records %s; refused",
            model.version,
            path,
            digest,
            model.sha256,
        )
        raise ConfigurationError(
            f"crowd model {model.version}: the artifact does not match its recorded "
            "SHA-256; refused (retrain)"
        )
    cached = _cache.get(digest)
    if cached is None:
        cached = Forecaster.load(path)
        if len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[digest] = cached
    return cached


@dataclass
class ForecastRun:
    """What one hourly forecast did."""

    model: CrowdModel
    origin: datetime
    forecasts: list[CrowdForecast] = field(default_factory=list)
    no_data: list[str] = field(default_factory=list)
    """Hotspots (codes) with no count in the last ``RECENT_HOURS`` hours: no forecast."""
    unknown: list[str] = field(default_factory=list)
    """Active hotspots the model was not trained on (they need a retrain)."""
    seconds: float = 0.0


def run_forecast(session: Session, *, settings: Settings, now: datetime) -> ForecastRun:
    """Forecast 1..3 h ahead from the last complete hour for every active hotspot the
    active model knows; store the forecasts (replacing those of the same origin)."""
    started = time.perf_counter()
    model = active_model(session)
    forecaster = load_model(settings, model)
    origin = last_complete_hour(now)
    run = ForecastRun(model=model, origin=origin)
    known = set(forecaster.sites)
    active = _active_hotspots(session)
    zone = (forecaster.tz, forecaster.region)
    hotspots = [h for h in active if h.code in known and (h.timezone, h.region) == zone]
    run.unknown = [h.code for h in active if h not in hotspots]
    if not hotspots:
        run.seconds = time.perf_counter() - started
        return run
    start = origin - LOOKBACK_HOURS * HOUR
    counts = load_counts(
        session,
        hotspots=hotspots,
        start=start,
        end=origin + HOUR,
        sites=forecaster.sites,
        tz=forecaster.tz,
        region=forecaster.region,
    )
    recent = ~np.isnan(counts.values[-RECENT_HOURS:])
    fresh: dict[str, CrowdHotspot] = {}
    for h in hotspots:
        if recent[:, forecaster.sites.index(h.code)].any():
            fresh[h.code] = h
        else:
            run.no_data.append(h.code)
    if not fresh:
        run.seconds = time.perf_counter() - started
        return run
    predicted = [f for f in forecaster.forecast(counts) if f.site in fresh]
    ids = [h.id for h in fresh.values()]
    existing = {
        (row.hotspot_id, row.horizon): row
        for row in session.scalars(
            select(CrowdForecast).where(
                CrowdForecast.origin == origin, CrowdForecast.hotspot_id.in_(ids)
            )
        )
    }
    for f in predicted:
        hotspot = fresh[f.site]
        row = existing.get((hotspot.id, f.horizon))
        if row is None:
            row = CrowdForecast(
                id=new_id(),
                hotspot_id=hotspot.id,
                origin=origin,
                target=f.target,
                horizon=f.horizon,
            )
            session.add(row)
        row.point, row.lower, row.upper, row.level = f.point, f.lower, f.upper, f.level
        row.model_id = model.id
        run.forecasts.append(row)
    session.flush()
    run.seconds = time.perf_counter() - started
    return run


def forecast_now(session: Session, *, settings: Settings, now: datetime) -> list[CrowdForecast]:
    """The stored forecasts of this hour (see :func:`run_forecast`)."""
    return run_forecast(session, settings=settings, now=now).forecasts
