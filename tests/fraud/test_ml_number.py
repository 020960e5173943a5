"""Scam-number and phishing-site models on small synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from safecity.fraud.ml import metrics
from safecity.fraud.ml.number_model import default_derived, train_number_model
from safecity.fraud.ml.site_model import train_site_model
from safecity.fraud.ml.tabular import Derived
from safecity.platform.errors import InvalidInput

NAMES = ["opposite_count", "opposite_unique", "sms_count", "arpu_mean", "noise"]


def synthetic_numbers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scam numbers call many distinct people once each: the driver is opposite_unique."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    unique = np.where(y == 1, rng.normal(300, 60, n), rng.normal(60, 40, n)).clip(1)
    calls = unique * np.where(y == 1, rng.uniform(1.0, 1.3, n), rng.uniform(1.5, 4.0, n))
    x = np.column_stack(
        [calls, unique, rng.poisson(20, n), rng.normal(50, 10, n), rng.normal(0, 1, n)]
    )
    x[rng.random(n) < 0.05, 3] = np.nan  # some missing ARPU, unrelated to the label
    return x, y


def test_train_and_predict_shapes_and_quality() -> None:
    x, y = synthetic_numbers(600, 0)
    xt, yt = synthetic_numbers(300, 1)
    model = train_number_model(x, y, NAMES, seed=0)
    p = model.predict_proba(xt)
    assert p.shape == (300,)
    assert ((p >= 0) & (p <= 1)).all()
    assert metrics.summary(yt, p, model.threshold)["roc_auc"] > 0.95
    assert model.predict(xt).dtype == bool
    assert 0.0 < model.threshold < 1.0


def test_derived_features_follow_the_declared_names() -> None:
    x, y = synthetic_numbers(300, 2)
    model = train_number_model(x, y, NAMES, seed=0)
    assert "calls_per_contact" in model.feature_names
    assert "calls_per_sms" in model.feature_names
    assert "arpu_all_missing" in model.feature_names
    assert "n_missing" in model.feature_names
    off = default_derived(NAMES, missingness=False)
    assert "n_missing" not in off.names()
    assert "arpu_all_missing" not in off.names()


def test_mapping_input_matches_array_input_and_none_is_missing() -> None:
    x, y = synthetic_numbers(300, 3)
    model = train_number_model(x, y, NAMES, seed=0)
    row = {n: float(v) for n, v in zip(NAMES, x[0], strict=True)}
    row["arpu_mean"] = None  # type: ignore[assignment]
    arr = x[0].copy()
    arr[3] = np.nan
    assert model.predict_proba(row)[0] == pytest.approx(model.predict_proba(arr)[0])
    m = model.matrix(row)
    assert m[0, model.feature_names.index("arpu_all_missing")] == 1.0


def test_reason_codes_name_the_driving_feature() -> None:
    x, y = synthetic_numbers(600, 4)
    model = train_number_model(x, y, NAMES, seed=0)
    scam = {"opposite_count": 420.0, "opposite_unique": 400.0, "sms_count": 20.0,
            "arpu_mean": 50.0, "noise": 0.0}  # fmt: skip
    assert model.predict_proba(scam)[0] > 0.8
    codes = model.reason_codes(scam, top=3)
    assert len(codes) == 3
    names = [c.feature for c in codes]
    assert {"opposite_unique", "calls_per_contact"} & set(names)
    assert "noise" not in names[:1]
    assert codes[0].contribution >= codes[1].contribution >= codes[2].contribution
    assert codes[0].contribution > 0
    assert codes[0].as_dict()["feature"] == names[0]


def test_bad_inputs_raise_invalid_input() -> None:
    x, y = synthetic_numbers(200, 5)
    model = train_number_model(x, y, NAMES, seed=0)
    with pytest.raises(InvalidInput, match="expects 5 features"):
        model.predict_proba(np.zeros((2, 4)))
    with pytest.raises(InvalidInput, match="unknown features"):
        model.predict_proba({"bogus": 1.0})
    with pytest.raises(InvalidInput, match="one example"):
        model.reason_codes(x[:2])
    with pytest.raises(InvalidInput, match="both classes"):
        train_number_model(x, np.zeros(len(x)), NAMES)
    with pytest.raises(InvalidInput, match="unique"):
        train_number_model(x, y, ["a", "a", "b", "c", "d"])
    with pytest.raises(InvalidInput, match="unknown inputs"):
        train_number_model(x, y, NAMES, derived=Derived(ratios=(("r", "zz", "noise"),)))


def test_seed_makes_training_reproducible_and_val_set_is_used() -> None:
    x, y = synthetic_numbers(400, 6)
    xv, yv = synthetic_numbers(200, 7)
    a = train_number_model(x, y, NAMES, seed=3, x_val=xv, y_val=yv)
    b = train_number_model(x, y, NAMES, seed=3, x_val=xv, y_val=yv)
    assert np.array_equal(a.predict_proba(xv), b.predict_proba(xv))
    strict = train_number_model(x, y, NAMES, seed=3, x_val=xv, y_val=yv, target_fpr=0.01)
    fp_rate = (strict.predict(xv) & (yv == 0)).sum() / (yv == 0).sum()
    assert fp_rate <= 0.01
    refit = train_number_model(x, y, NAMES, seed=3, x_val=xv, y_val=yv, refit_on_all=True)
    assert refit.booster.current_iteration() >= a.booster.current_iteration()


def test_site_model_on_three_valued_indicators() -> None:
    rng = np.random.default_rng(0)
    n = 800
    names = ["SSLfinal_State", "URL_of_Anchor", "web_traffic", "Favicon"]
    x = rng.choice([-1, 0, 1], size=(n, 4)).astype(float)
    logit = -2.0 * x[:, 0] - 1.2 * x[:, 1] + rng.normal(0, 0.5, n)
    y = (logit > 0).astype(int)
    model = train_site_model(x[:600], y[:600], names, seed=0)
    p = model.predict_proba(x[600:])
    assert p.shape == (200,)
    assert metrics.summary(y[600:], p, model.threshold)["accuracy"] > 0.85
    phishy = {"SSLfinal_State": -1, "URL_of_Anchor": -1, "web_traffic": 1, "Favicon": 1}
    codes = model.reason_codes(phishy, top=2)
    assert codes[0].feature == "SSLfinal_State"
    assert not math.isnan(codes[0].contribution)
