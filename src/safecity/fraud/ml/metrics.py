"""Metrics for the fraud classifiers: ranking, operating-point and class-balanced figures.

Fraud alerts are judged at a fixed false-alarm budget (an officer can review so many
numbers a day), so the headline operating figure is :func:`recall_at_fpr`: the share of
frauds caught by the best threshold whose false-positive rate stays within the budget.
Threshold choosers (:func:`threshold_at_fpr`, :func:`best_threshold`) work on validation
scores only; the caller must never pass test labels to them. sklearn supplies ROC-AUC,
average precision and F1; G-mean (geometric mean of per-class recalls, used by the
GAT-COBO papers) is computed here from the confusion matrix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import metrics as skm  # type: ignore[import-untyped]


def _arrays(y_true: ArrayLike, score: ArrayLike) -> tuple[NDArray[np.int_], NDArray[np.float64]]:
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but score has {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    return y, s


def recall_at_fpr(y_true: ArrayLike, score: ArrayLike, fpr: float = 0.01) -> float:
    """Largest recall over thresholds ``score >= t`` whose false-positive rate is <= ``fpr``.

    Ties count together: a threshold cannot split equal scores. Returns 0.0 when even the
    highest threshold exceeds the budget.
    """
    y, s = _arrays(y_true, score)
    if y.min() == y.max():
        raise ValueError("recall_at_fpr needs both classes")
    fprs, tprs, _ = skm.roc_curve(y, s, drop_intermediate=False)
    ok = fprs <= fpr + 1e-12
    return float(tprs[ok].max()) if ok.any() else 0.0


def threshold_at_fpr(y_true: ArrayLike, score: ArrayLike, fpr: float = 0.01) -> float:
    """Lowest threshold ``t`` (alert when ``score >= t``) keeping FPR here <= ``fpr``."""
    y, s = _arrays(y_true, score)
    neg = np.sort(s[y == 0])[::-1]
    if neg.size == 0:
        return float(s.min())
    allowed = math.floor(fpr * neg.size + 1e-9)  # negatives that may score >= t
    if allowed >= neg.size:
        return float(s.min())
    # t must sit strictly above the (allowed+1)-th highest negative score.
    return float(np.nextafter(neg[allowed], np.inf))


def confusion(y_true: ArrayLike, pred: ArrayLike) -> tuple[int, int, int, int]:
    """``(tn, fp, fn, tp)`` for 0/1 labels and 0/1 predictions."""
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(pred).astype(int).ravel()
    tn, fp, fn, tp = skm.confusion_matrix(y, p, labels=[0, 1]).ravel()
    return int(tn), int(fp), int(fn), int(tp)


def g_mean(y_true: ArrayLike, pred: ArrayLike) -> float:
    """Geometric mean of the recall of each class (sensitivity × specificity, square root)."""
    tn, fp, fn, tp = confusion(y_true, pred)
    tpr = tp / (tp + fn) if tp + fn else 0.0
    tnr = tn / (tn + fp) if tn + fp else 0.0
    return math.sqrt(tpr * tnr)


def macro_f1(y_true: ArrayLike, pred: ArrayLike) -> float:
    """Unweighted mean of the F1 of both classes."""
    return float(skm.f1_score(y_true, pred, average="macro", zero_division=0))


def best_threshold(y_true: ArrayLike, score: ArrayLike, *, metric: str = "macro_f1") -> float:
    """Threshold maximising ``metric`` (``macro_f1``, ``f1`` or ``g_mean``) on these data.

    Candidates are the midpoints between consecutive distinct scores, so the threshold
    generalises a little better than an observed score would. All candidates are scored
    at once from cumulative counts (O(n log n)).
    """
    y, s = _arrays(y_true, score)
    if metric not in ("macro_f1", "f1", "g_mean"):
        raise ValueError(f"unknown metric {metric!r}; use one of ['f1', 'g_mean', 'macro_f1']")
    uniq = np.unique(s)
    cands = (uniq[:-1] + uniq[1:]) / 2 if uniq.size > 1 else uniq
    pos = np.sort(s[y == 1])
    neg = np.sort(s[y == 0])
    tp = pos.size - np.searchsorted(pos, cands, side="left")  # positives with s >= t
    fp = neg.size - np.searchsorted(neg, cands, side="left")
    fn = pos.size - tp
    tn = neg.size - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_pos = np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        f1_neg = np.nan_to_num(2 * tn / (2 * tn + fn + fp))
        tpr = np.nan_to_num(tp / np.maximum(pos.size, 1))
        tnr = np.nan_to_num(tn / np.maximum(neg.size, 1))
    value = {
        "macro_f1": (f1_pos + f1_neg) / 2,
        "f1": f1_pos,
        "g_mean": np.sqrt(tpr * tnr),
    }[metric]
    return float(cands[int(np.argmax(value))])


def summary(
    y_true: ArrayLike, score: ArrayLike, threshold: float, *, fprs: tuple[float, ...] = (0.01, 0.05)
) -> dict[str, Any]:
    """The figures every fraud benchmark reports, at one decision threshold."""
    y, s = _arrays(y_true, score)
    pred = (s >= threshold).astype(int)
    tn, fp, fn, tp = confusion(y, pred)
    out: dict[str, Any] = {
        "roc_auc": float(skm.roc_auc_score(y, s)),
        "average_precision": float(skm.average_precision_score(y, s)),
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "macro_f1": macro_f1(y, pred),
        "g_mean": g_mean(y, pred),
        "macro_recall": float(skm.balanced_accuracy_score(y, pred)),
        "threshold": float(threshold),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    for f in fprs:
        out[f"recall_at_{f * 100:g}pct_fpr"] = recall_at_fpr(y, s, f)
    return out
