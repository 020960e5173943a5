"""Readers for the fraud model inputs: the public benchmark sets and the product's own
training files.

Public sets (read-only, never copied; ``$SAFECITY_FRAUD_DATA`` or the folder given,
default ``../shared/benchmarks/fraud`` beside the repository): Sichuan telecom-fraud
users, UCI phishing websites, UCI SMS spam. Product files: a CSV with a header, one row
per number (or site), a 0/1 label column, empty cells for missing values; or a TSV of
``label<TAB>text`` lines for SMS text (labels ``1``/``0`` or ``spam``/``ham``).
pandas is not a dependency, so the standard library reads them.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from safecity.platform.errors import InvalidInput, NotFound

DATASETS = ("sichuan", "phishing", "sms")
_LABELS = {"1": 1, "0": 0, "spam": 1, "ham": 0, "true": 1, "false": 0}


def data_root(root: str | Path | None = None) -> Path:
    path = Path(root or os.environ.get("SAFECITY_FRAUD_DATA", "../shared/benchmarks/fraud"))
    if not path.is_dir():
        raise NotFound(f"fraud data not found at {path} (set SAFECITY_FRAUD_DATA or --data-root)")
    return path


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise NotFound(f"{path} does not exist")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise InvalidInput(f"{path} has no data rows")
    return rows


def _number(value: str, where: str) -> float:
    if value.strip() in ("", "NA", "nan", "NaN"):
        return math.nan
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{where}: {value[:20]!r} is not a number") from None


def load_sichuan(
    root: str | Path | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int_], list[str], Any]:
    """Features (NaN = empty cell), labels, feature names, the similarity adjacency (CSR)."""
    import scipy.sparse as sp  # type: ignore[import-untyped]

    folder = data_root(root) / "sichuan-telecom-fraud"
    rows = _rows(folder / "sichuan_user_features.csv")
    header = rows[0]
    if header[0] != "phone_no_m" or header[-1] != "label":
        raise InvalidInput(f"unexpected Sichuan header: {header[:2]} … {header[-1:]}")
    x = np.array([[_number(v, "sichuan") for v in r[1:-1]] for r in rows[1:]])
    y = np.array([int(float(r[-1])) for r in rows[1:]])
    adj = sp.load_npz(folder / "sichuan_user_similarity_adj.npz")
    return x, y, header[1:-1], adj


def load_phishing(
    root: str | Path | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.int_], list[str]]:
    """Indicators (-1/0/1) and labels with phishing = 1 (the file's ``Result == -1``)."""
    rows = _rows(data_root(root) / "uci-phishing-websites" / "phishing_websites.csv")
    data = np.array(rows[1:], dtype=float)
    return data[:, :-1], (data[:, -1] == -1).astype(int), rows[0][:-1]


def load_sms(root: str | Path | None = None) -> tuple[list[str], NDArray[np.int_]]:
    """Texts and labels with spam = 1 (``label<TAB>text`` lines, no quoting)."""
    return read_text_file(data_root(root) / "uci-sms-spam-collection" / "SMSSpamCollection.tsv")


def read_text_file(path: Path) -> tuple[list[str], NDArray[np.int_]]:
    """``label<TAB>text`` lines → texts and 0/1 labels."""
    if not path.is_file():
        raise NotFound(f"{path} does not exist")
    texts: list[str] = []
    labels: list[int] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or label.strip().lower() not in _LABELS:
            raise InvalidInput(
                f"{path.name} line {n}: expected 'label<TAB>text' with label 1/0 or spam/ham"
            )
        texts.append(text)
        labels.append(_LABELS[label.strip().lower()])
    if not texts:
        raise InvalidInput(f"{path} has no lines")
    return texts, np.array(labels)


def read_header(path: Path) -> list[str]:
    """The column names of a CSV."""
    return [h.strip() for h in _rows(path)[0]]


def read_table(
    path: Path, *, label: str | None = "label", ids: str | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int_] | None, list[str], list[str]]:
    """A feature CSV → (features, labels or None, feature names, row ids)."""
    rows = _rows(path)
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise InvalidInput(f"{path.name}: column names must be unique")
    if label is not None and label not in header:
        raise InvalidInput(f"{path.name}: no label column {label!r}")
    if ids is not None and ids not in header:
        raise InvalidInput(f"{path.name}: no id column {ids!r}")
    feature_cols = [i for i, h in enumerate(header) if h not in (label, ids)]
    if not feature_cols:
        raise InvalidInput(f"{path.name}: no feature columns")
    x, y, row_ids = [], [], []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InvalidInput(f"{path.name} line {n}: {len(row)} cells, header has {len(header)}")
        x.append([_number(row[i], f"{path.name} line {n}") for i in feature_cols])
        if label is not None:
            value = row[header.index(label)].strip().lower()
            if value not in _LABELS:
                raise InvalidInput(f"{path.name} line {n}: label must be 0 or 1")
            y.append(_LABELS[value])
        row_ids.append(row[header.index(ids)] if ids is not None else str(n - 1))
    names = [header[i] for i in feature_cols]
    return np.array(x), (np.array(y) if label is not None else None), names, row_ids
