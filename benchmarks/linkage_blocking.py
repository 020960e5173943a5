"""Blocking-rule recall of the person index's default rules, per rule and cumulative.

The rules (``safecity.linkage.comparisons.BLOCKING_RULES``, one list for every Western
person set) were chosen on the ``tune`` half of historical_50k (whole persons, split by a
hash of the label); this script reports each rule's own pairs and recall, its new pairs,
and the cumulative pairs and recall, on that half, on the held-out ``eval`` half, and on
FEBRL3/FEBRL4 as a regression guard. Usage:

    .venv/bin/python benchmarks/linkage_blocking.py
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from safecity.linkage import comparisons as comp
from safecity.linkage import datasets
from safecity.linkage import person_index as pi


def _report(label: str, tables: Any, link_type: pi.LinkType) -> dict[str, Any]:
    t0 = time.perf_counter()
    prepared = pi.prepare(tables)
    rules = comp.build_blocking_rules(prepared.present)
    steps = pi.blocking_recall(tables, rules, link_type)
    alone = pi.blocking_recall_each(tables, rules, link_type)
    for step, own in zip(steps, alone, strict=True):
        step["alone_pairs"] = own["pairs"]
        step["alone_recall"] = round(own["recall"], 4)
        step["cumulative_recall"] = round(step["cumulative_recall"], 4)
    last = steps[-1]
    print(
        f"{label:22} rules {len(rules):>2}  pairs {last['cumulative_pairs']:>9,}  "
        f"blocking recall {last['cumulative_recall']:.4f}",
        flush=True,
    )
    return {
        "set": label,
        "records": sum(len(t) for t in tables),
        "true_pairs": pi.true_pair_count(tables, link_type),
        "pairs": last["cumulative_pairs"],
        "blocking_recall": last["cumulative_recall"],
        "seconds": round(time.perf_counter() - t0, 1),
        "rules": steps,
    }


def main() -> int:
    results = []
    hist, link_type = datasets.load("historical-50k")
    for part in datasets.SPLITS:
        half = [datasets.split_half(hist[0], part)]
        results.append(_report(f"historical-50k:{part}", half, link_type))
    results.append(_report("historical-50k", hist, link_type))
    for name in ("febrl3", "febrl4"):
        tables, lt = datasets.load(name)
        results.append(_report(name, tables, lt))
    out = {
        "benchmark": "linkage_blocking",
        "command": "python benchmarks/linkage_blocking.py",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "results": results,
    }
    path = Path(__file__).parent / "results" / "linkage_blocking.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
