"""Features without leakage, calibrated intervals, persistence, holiday table."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from safecity.crowd.datasets import HourlyCounts, synthetic_counts
from safecity.crowd.forecast import (
    FEATURES,
    HOLIDAY,
    RESTDAY,
    WORKDAY,
    ForecastConfig,
    Forecaster,
    build_calendar,
    build_features,
    conformal_quantile,
    default_holidays,
    horizons_arg,
    parse_holidays,
)
from safecity.platform.errors import InvalidInput

FAST = ForecastConfig(num_rounds=60, learning_rate=0.1, num_leaves=15, threads=1)


@pytest.mark.parametrize("horizon", [1, 2, 3])
def test_features_use_no_count_at_or_after_the_target(horizon: int) -> None:
    counts = synthetic_counts(sites=("a", "b"), days=40)
    cal = build_calendar(counts.start, counts.hours + 30, tz="UTC", region="")
    rng = np.random.default_rng(1)
    for origin in (0, 5, 200, 700, counts.hours - 1):
        target = origin + horizon
        origins = np.array([origin, origin], dtype=np.int64)
        sites = np.array([0, 1], dtype=np.int64)
        x, scale = build_features(counts.values, cal, origins, sites, horizon)
        tampered = counts.values.copy()
        tampered[origin + 1 :] = rng.uniform(0, 1e5, size=tampered[origin + 1 :].shape)
        x2, scale2 = build_features(tampered, cal, origins, sites, horizon)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(scale, scale2)
        assert target > origin
    # and the counts up to the origin do matter (the test can fail)
    changed = counts.values.copy()
    changed[700] *= 3
    x3, _ = build_features(changed, cal, np.array([700], dtype=np.int64), np.array([0]), 1)
    x4, _ = build_features(counts.values, cal, np.array([700], dtype=np.int64), np.array([0]), 1)
    assert not np.array_equal(x3, x4)
    assert x.shape[1] == len(FEATURES)


def test_bad_horizon_and_origin() -> None:
    counts = synthetic_counts(days=10)
    cal = build_calendar(counts.start, counts.hours + 30, tz="UTC", region="")
    one = np.array([0], dtype=np.int64)
    with pytest.raises(InvalidInput, match="horizon"):
        build_features(counts.values, cal, one, one, 24)
    with pytest.raises(InvalidInput, match="origin"):
        build_features(counts.values, cal, np.array([counts.hours]), one, 1)
    with pytest.raises(InvalidInput, match="horizons must be"):
        horizons_arg("1,x")
    with pytest.raises(InvalidInput, match="horizons must be"):
        horizons_arg("0,30")
    assert horizons_arg("3,1,1") == (1, 3)


@pytest.mark.parametrize("refit", [False, True])
def test_intervals_cover_about_the_nominal_rate(refit: bool) -> None:
    counts = synthetic_counts(sites=tuple("abcdef"), days=84, seed=3, noise=0.15)
    fit_end = 70 * 24
    forecaster = Forecaster(replace(FAST, refit=refit))
    forecaster.fit(counts, end=fit_end, calibration_start=56 * 24)
    origins = np.arange(fit_end - 1, counts.hours - 3, dtype=np.int64)
    for h in FAST.horizons:
        actual = counts.values[origins + h]
        for level in (0.8, 0.9):
            pred = forecaster.predict(counts, origins, h, level=level)
            inside = (actual >= pred.lower) & (actual <= pred.upper)
            assert abs(inside.mean() - level) < 0.05, (h, level, inside.mean())
        pred = forecaster.predict(counts, origins, h)
        wape = np.abs(pred.point - actual).sum() / actual.sum()
        assert wape < 0.2  # noise alone is ~12 %


def test_gaps_are_not_trained_on_and_forecast_still_runs(tmp_path: Path) -> None:
    counts = synthetic_counts(sites=("a", "b"), days=40)
    values = counts.values.copy()
    values[300:420, 0] = np.nan  # a five-day sensor outage
    values[-2:, 1] = np.nan  # the latest hours are missing
    gappy = HourlyCounts(counts.sites, counts.start, values)
    forecaster = Forecaster(FAST)
    report = forecaster.fit(gappy, calibration_start=30 * 24)
    observed_targets = int((~np.isnan(values[1 : 30 * 24])).sum())
    assert report.horizons[1]["fit_rows"] == observed_targets
    result = forecaster.forecast(gappy)
    assert len(result) == 2 * 3
    assert all(np.isfinite(f.point) and f.lower <= f.point <= f.upper for f in result)
    assert {f.horizon for f in result} == {1, 2, 3}
    assert result[0].target == gappy.time_at(gappy.hours - 1 + 1)

    path = tmp_path / "model.json"
    forecaster.save(path)
    again = Forecaster.load(path)
    assert again.sites == forecaster.sites
    assert [f.point for f in again.forecast(gappy)] == pytest.approx([f.point for f in result])


def test_fit_and_forecast_refuse_bad_input(tmp_path: Path) -> None:
    counts = synthetic_counts(days=5)
    with pytest.raises(InvalidInput, match="not enough history"):
        Forecaster(FAST).fit(counts)
    with pytest.raises(InvalidInput, match="not trained"):
        Forecaster(FAST).forecast(counts)
    trained = Forecaster(FAST)
    trained.fit(synthetic_counts(days=30), calibration_start=20 * 24)
    other = synthetic_counts(sites=("a", "zzz"), days=3)
    with pytest.raises(InvalidInput, match="unknown hotspot 'zzz'"):
        trained.forecast(other)
    with pytest.raises(InvalidInput, match="no calibration for level"):
        trained.forecast(synthetic_counts(days=3), level=0.77)
    bad = tmp_path / "m.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidInput, match="not a forecaster model"):
        Forecaster.load(bad)


def test_conformal_quantile() -> None:
    scores = np.arange(1.0, 100.0)  # 99 scores
    assert conformal_quantile(scores, 0.9) == 90.0  # ceil(100 * 0.9) = 90th smallest
    assert conformal_quantile(np.array([1.0, 2.0]), 0.9) == float("inf")


def test_holiday_table_is_data_and_drives_day_kind() -> None:
    table = default_holidays()
    assert table[("AU-VIC", date(2022, 9, 22))] == "holiday"  # National Day of Mourning
    assert table[("CN", date(2026, 10, 1))] == "holiday"
    assert table[("CN", date(2026, 2, 14))] == "workday"  # a Saturday worked
    from datetime import UTC, datetime

    cal = build_calendar(datetime(2026, 2, 13, 16, tzinfo=UTC), 72, tz="Asia/Shanghai", region="CN")
    assert cal.hour[0] == 0  # 16:00 UTC is local midnight
    assert cal.daykind[0] == WORKDAY  # Sat 14 Feb 2026 is an adjusted working day
    assert cal.daykind[24] == HOLIDAY  # Sun 15 Feb: Spring Festival
    plain = build_calendar(datetime(2026, 3, 7, tzinfo=UTC), 1, tz="UTC", region="CN")
    assert plain.daykind[0] == RESTDAY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("region,date\nCN,2026-01-01\n", "header must be"),
        ("region,date,kind,name,source\nCN,2026-13-01,holiday,x,y\n", "bad date"),
        ("region,date,kind,name,source\nCN,2026-01-01,party,x,y\n", "kind must be"),
        ("region,date,kind,name,source\nCN,2026-01-01,holiday,x,\n", "source are required"),
        ("region,date,kind,name,source\nCN,2026-01-01,holiday,x\n", "expected 5 fields"),
        (
            "region,date,kind,name,source\nCN,2026-01-01,holiday,x,y\nCN,2026-01-01,holiday,x,y\n",
            "listed twice",
        ),
    ],
)
def test_malformed_holiday_file(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_holidays(text)
