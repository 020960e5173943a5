"""Loaders for the labelled benchmark sets in ``../shared/benchmarks/linkage``.

Each loader maps the file's columns to the canonical person fields and adds ``truth``
(the entity label) and, for two-file links, ``source_dataset``. Read-only; the files are
never copied into the repository. ``SAFECITY_BENCH_DATA`` overrides the root.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any, Literal

DATASETS = ("febrl3", "febrl4", "historical-50k")
SPLITS = ("tune", "eval")


def bench_root() -> Path:
    return Path(os.environ.get("SAFECITY_BENCH_DATA", "/work/shared/benchmarks")) / "linkage"


def _febrl_rows(path: Path, source: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh, skipinitialspace=True):
            rec = {k.strip(): (v or "").strip() or None for k, v in raw.items() if k}
            rec_id = str(rec["rec_id"])
            street = " ".join(x for x in (rec["street_number"], rec["address_1"]) if x)
            row: dict[str, Any] = {
                "unique_id": rec_id if source is None else f"{source}:{rec_id}",
                "truth": rec_id.split("-")[1],
                "given_name": rec["given_name"],
                "surname": rec["surname"],
                "dob": rec["date_of_birth"],
                "address": street or None,
                "locality": rec["suburb"],
                "postcode": rec["postcode"],
                "region": rec["state"],
                "soc_sec_id": rec["soc_sec_id"],
            }
            if source is not None:
                row["source_dataset"] = source
            rows.append(row)
    return rows


def load(
    name: str,
) -> tuple[list[list[dict[str, Any]]], Literal["dedupe_only", "link_only"]]:
    """(tables, link_type): one table for dedupe, two for a link."""
    root = bench_root()
    if name == "febrl3":
        return [_febrl_rows(root / "febrl" / "febrl3.csv", None)], "dedupe_only"
    if name == "febrl4":
        a = _febrl_rows(root / "febrl" / "febrl4a.csv", "a")
        b = _febrl_rows(root / "febrl" / "febrl4b.csv", "b")
        return [a, b], "link_only"
    if name == "historical-50k":
        import pyarrow.parquet as pq

        path = root / "splink-historical-50k" / "historical_figures_with_errors_50k.parquet"
        out = []
        for rec in pq.read_table(path).to_pylist():
            out.append(
                {
                    "unique_id": rec["unique_id"],
                    "truth": rec["cluster"],
                    "given_name": rec["first_name"],
                    "surname": rec["surname"],
                    "full_name": rec["full_name"],
                    "dob": rec["dob"],
                    "birth_place": rec["birth_place"],
                    "postcode": rec["postcode_fake"],
                    "sex": rec["gender"],
                    "occupation": rec["occupation"],
                }
            )
        return [out], "dedupe_only"
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def split_half(rows: list[dict[str, Any]], part: str) -> list[dict[str, Any]]:
    """Half of a dedupe set, whole entities at a time (md5 of the truth label).

    ``tune`` is the unscored split on which blocking rules are chosen; ``eval`` is held
    out from that choice.
    """
    if part not in SPLITS:
        raise ValueError(f"unknown split {part!r}; choose one of {', '.join(SPLITS)}")
    want = 0 if part == "tune" else 1

    def side(label: Any) -> int:
        return int(hashlib.md5(str(label).encode()).hexdigest(), 16) % 2  # noqa: S324

    return [r for r in rows if side(r["truth"]) == want]
