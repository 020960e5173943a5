"""Shared plumbing for the fraud benchmarks: data paths, loaders, summaries, result files.

Data live read-only in ``$SAFECITY_FRAUD_DATA`` (default ``../shared/benchmarks/fraud``
relative to the repository); nothing is copied. pandas is not a dependency, so the CSV/TSV
files are read with the standard library.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.fraud.ml import datasets

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
console = Console(width=160)


def data_root() -> Path:
    root = Path(os.environ.get("SAFECITY_FRAUD_DATA", REPO.parent / "shared/benchmarks/fraud"))
    if not root.is_dir():
        sys.exit(f"fraud data not found at {root} (set SAFECITY_FRAUD_DATA)")
    return root


def load_sichuan() -> tuple[np.ndarray, np.ndarray, list[str], Any]:
    """Features (NaN = empty cell), labels, feature names, the similarity adjacency (CSR)."""
    return datasets.load_sichuan(data_root())


def load_phishing() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Indicators (-1/0/1) and labels with phishing = 1 (the file's ``Result == -1``)."""
    return datasets.load_phishing(data_root())


def load_sms() -> tuple[list[str], np.ndarray]:
    """Texts and labels with spam = 1 (``label<TAB>text`` lines, no quoting)."""
    return datasets.load_sms(data_root())


def versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("safecity", "lightgbm", "scikit-learn", "numpy", "scipy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "?"
    return out


def mean_sd(runs: Sequence[Mapping[str, Any]], keys: Iterable[str]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each numeric key over runs."""
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        vals = [float(r[k]) for r in runs if r.get(k) is not None]
        if not vals:
            continue
        sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        out[k] = {"mean": float(np.mean(vals)), "sd": sd, "n": len(vals)}
    return out


def fmt(v: Any) -> str:
    if isinstance(v, dict) and "mean" in v:
        return f"{v['mean']:.4f}±{v['sd']:.4f}"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="left" if c == columns[0] else "right")
    for row in rows:
        table.add_row(*[fmt(v) for v in row])
    console.print(table)


def write_result(name: str, body: Mapping[str, Any], output: Path | None = None) -> Path:
    out = {
        "benchmark": name,
        "command": "python benchmarks/" + name + ".py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "data_root": str(data_root()),
        **body,
    }
    path = output or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {path}")
    return path
