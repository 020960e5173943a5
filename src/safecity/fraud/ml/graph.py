"""Neighbour features from a graph between numbers (call graph or behaviour similarity).

Two kinds, both safe to compute on nodes whose labels are unknown:

- :func:`neighbour_mean`: the mean of each neighbour's features (no labels at all);
- :func:`label_features`: from *known* labels only, the share of labelled neighbours that
  are fraud, the log of their count, and a label-propagation score (known labels clamped,
  the rest iterated to the neighbour mean).

Training rows must not see their own label through the graph (propagation would hand it
back), so :func:`label_features_oof` computes the training rows' values out of fold and
all other rows' values from every training label.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp  # type: ignore[import-untyped]
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]

from safecity.platform.errors import InvalidInput

LABEL_FEATURES = ("nbr_fraud_share", "nbr_labelled_log", "label_propagation")


def symmetric(adj: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """0/1 symmetric CSR adjacency without self-loops (from an upper-triangular one, say)."""
    a = sp.csr_matrix(adj, dtype=float)
    if a.shape[0] != a.shape[1]:
        raise InvalidInput(f"adjacency must be square, got {a.shape}")
    a = ((a + a.T) > 0).astype(float).tocsr()
    a.setdiag(0)
    a.eliminate_zeros()
    return a


def _inv_degree(adj: sp.csr_matrix) -> NDArray[np.float64]:
    deg = np.asarray(adj.sum(axis=1), dtype=float).ravel()
    return np.asarray(1.0 / np.maximum(deg, 1.0), dtype=float)


def neighbour_mean(adj: sp.csr_matrix, x: ArrayLike) -> NDArray[np.float64]:
    """Mean of the neighbours' rows of ``x`` (missing values skipped; NaN if none)."""
    m = np.asarray(x, dtype=float)
    present = (~np.isnan(m)).astype(float)
    total = adj @ np.nan_to_num(m, nan=0.0)
    count = adj @ present
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(count > 0, total / count, np.nan), dtype=float)


def label_features(
    adj: sp.csr_matrix, known: ArrayLike, y_known: ArrayLike, *, iterations: int = 10
) -> NDArray[np.float64]:
    """``(n, 3)``: fraud share among labelled neighbours, log1p(labelled neighbours), LP score."""
    idx = np.asarray(known, dtype=int)
    yk = np.asarray(y_known, dtype=float)
    if idx.shape != yk.shape:
        raise InvalidInput("known indices and labels differ in length")
    n = adj.shape[0]
    lab = np.zeros(n)
    mask = np.zeros(n)
    lab[idx] = yk
    mask[idx] = 1.0
    n_lab = adj @ mask
    share = np.where(n_lab > 0, (adj @ lab) / np.maximum(n_lab, 1.0), np.nan)
    prior = float(yk.mean()) if yk.size else 0.0
    inv = _inv_degree(adj)
    isolated = np.asarray(adj.sum(axis=1)).ravel() == 0
    f = np.full(n, prior)
    f[idx] = yk
    for _ in range(iterations):
        f = (adj @ f) * inv
        f[isolated] = prior
        f[idx] = yk
    return np.column_stack([share, np.log1p(n_lab), f])


def label_features_oof(
    adj: sp.csr_matrix, train: ArrayLike, y_train: ArrayLike, *, folds: int = 5, seed: int = 0
) -> NDArray[np.float64]:
    """:func:`label_features` with the training rows computed out of fold (no self-leak)."""
    tr = np.asarray(train, dtype=int)
    yt = np.asarray(y_train, dtype=int)
    out = label_features(adj, tr, yt)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for keep, held in skf.split(tr, yt):
        part = label_features(adj, tr[keep], yt[keep])
        out[tr[held]] = part[tr[held]]
    return out
