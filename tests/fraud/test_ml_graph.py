"""Neighbour features: no label leaks into training rows, values on a small graph."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp  # type: ignore[import-untyped]

from safecity.fraud.ml import graph
from safecity.platform.errors import InvalidInput


def path_graph() -> sp.csr_matrix:
    # 0 - 1 - 2 - 3, and 4 isolated; upper triangle only, as stored on disk.
    return graph.symmetric(sp.csr_matrix(([1, 1, 1], ([0, 1, 2], [1, 2, 3])), shape=(5, 5)))


def test_symmetric_and_neighbour_mean() -> None:
    a = path_graph()
    assert (a != a.T).nnz == 0
    x = np.array([[1.0], [np.nan], [3.0], [5.0], [7.0]])
    m = graph.neighbour_mean(a, x)
    assert m[1, 0] == 2.0  # mean of 1 and 3
    assert m[2, 0] == 5.0  # node 1 is missing, node 3 has 5
    assert np.isnan(m[4, 0])  # isolated
    with pytest.raises(InvalidInput, match="square"):
        graph.symmetric(sp.csr_matrix((2, 3)))


def test_label_features_use_known_labels_only() -> None:
    a = path_graph()
    f = graph.label_features(a, np.array([0, 3]), np.array([1, 0]))
    assert f[1, 0] == 1.0  # its one labelled neighbour (0) is fraud
    assert f[2, 0] == 0.0
    assert f[0, 2] == 1.0  # clamped
    assert f[4, 2] == 0.5  # isolated: the prior
    assert 0.0 < f[1, 2] < 1.0


def test_out_of_fold_features_do_not_echo_own_label() -> None:
    rng = np.random.default_rng(0)
    n = 60
    a = graph.symmetric(sp.random(n, n, density=0.1, random_state=1, format="csr"))
    y = rng.integers(0, 2, n)
    train = np.arange(40)
    oof = graph.label_features_oof(a, train, y[train], folds=4, seed=0)
    # Random labels: the propagated score of a training row must not equal its own label.
    assert not np.array_equal(oof[train, 2], y[train].astype(float))
    full = graph.label_features(a, train, y[train])
    assert np.array_equal(full[train, 2], y[train].astype(float))  # what OOF avoids
    assert np.allclose(oof[40:], full[40:], equal_nan=True)
