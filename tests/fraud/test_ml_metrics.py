"""Fraud metrics on hand-made examples whose values can be worked out on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.fraud.ml import metrics

# 10 negatives, 4 positives; positives at ranks 1, 2, 4 and 9 (highest score first).
Y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
S = np.array([0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_recall_at_fpr_exact_values() -> None:
    assert metrics.recall_at_fpr(Y, S, 0.0) == 0.5  # above the first negative: 2 of 4
    assert metrics.recall_at_fpr(Y, S, 0.1) == 0.75  # one false positive allowed: 3 of 4
    assert metrics.recall_at_fpr(Y, S, 0.45) == 0.75  # 5 negatives sit above the 4th positive
    assert metrics.recall_at_fpr(Y, S, 0.5) == 1.0


def test_recall_at_fpr_ties_move_together() -> None:
    y = [1, 0, 1, 0]
    s = [0.9, 0.5, 0.5, 0.1]  # the second positive ties with a negative
    assert metrics.recall_at_fpr(y, s, 0.4) == 0.5
    assert metrics.recall_at_fpr(y, s, 0.5) == 1.0


def test_recall_at_fpr_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="both classes"):
        metrics.recall_at_fpr([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="values"):
        metrics.recall_at_fpr([1, 0], [0.2])


def test_threshold_at_fpr_keeps_the_budget() -> None:
    t = metrics.threshold_at_fpr(Y, S, 0.1)  # one negative (0.9) may pass, 0.8 may not
    assert 0.8 < t <= 0.9
    pred = t <= S
    assert pred[Y == 0].sum() == 1
    assert pred[Y == 1].sum() == 3


def test_g_mean_and_macro_f1() -> None:
    y = [1, 1, 0, 0, 0, 0]
    p = [1, 0, 0, 0, 0, 1]
    assert metrics.g_mean(y, p) == pytest.approx(math.sqrt(0.5 * 0.75))
    # F1 pos = 2*.5*.5/1 = 0.5; F1 neg: precision 3/4, recall 3/4 -> 0.75
    assert metrics.macro_f1(y, p) == pytest.approx(0.625)


def test_best_threshold_separates_a_separable_set() -> None:
    y = [0, 0, 0, 1, 1]
    s = [0.1, 0.2, 0.3, 0.7, 0.8]
    t = metrics.best_threshold(y, s)
    assert 0.3 < t < 0.7
    assert metrics.best_threshold(y, s, metric="g_mean") == pytest.approx(t)
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.best_threshold(y, s, metric="accuracy")


def test_summary_figures() -> None:
    out = metrics.summary(Y, S, 0.82)
    assert out["confusion"] == {"tn": 9, "fp": 1, "fn": 1, "tp": 3}
    assert out["recall_at_1pct_fpr"] == 0.5
    assert out["recall_at_5pct_fpr"] == 0.5
    assert out["recall"] == 0.75
    assert 0.5 < out["roc_auc"] < 1.0


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=4, max_size=40),
    st.floats(0, 1),
)
def test_threshold_at_fpr_never_exceeds_budget(rows: list[tuple[bool, float]], fpr: float) -> None:
    y = np.array([int(a) for a, _ in rows])
    s = np.array([b for _, b in rows])
    if y.min() == y.max():
        return
    t = metrics.threshold_at_fpr(y, s, fpr)
    realised = ((s >= t) & (y == 0)).sum() / (y == 0).sum()
    assert realised <= fpr + 1e-12
    assert ((s >= t) & (y == 1)).mean() * len(y) / (y == 1).sum() <= metrics.recall_at_fpr(
        y, s, fpr
    ) + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=4, max_size=30))
def test_best_threshold_matches_brute_force(rows: list[tuple[bool, int]]) -> None:
    y = np.array([int(a) for a, _ in rows])
    s = np.array([b / 20 for _, b in rows])
    if y.min() == y.max() or len(np.unique(s)) < 2:
        return
    t = metrics.best_threshold(y, s)
    u = np.unique(s)
    brute = max(metrics.macro_f1(y, (s >= c).astype(int)) for c in (u[:-1] + u[1:]) / 2)
    assert metrics.macro_f1(y, (s >= t).astype(int)) == pytest.approx(brute)
