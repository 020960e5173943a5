"""Person-index benchmark: FEBRL3 dedupe, FEBRL4 link, splink historical_50k dedupe.

The product code path (`safecity.linkage.person_index`: train without labels, predict,
cluster) is measured against the labels. Pairwise precision/recall/F1 count every true
pair, including pairs lost by blocking. Usage:

    .venv/bin/python benchmarks/linkage_person.py [febrl3 febrl4 historical-50k ...]

``historical-50k:eval`` scores only the half of historical_50k (whole persons, by a hash
of the label) that was not used to choose the blocking rules (see linkage_blocking.py);
its baseline figures are for the full set.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from safecity.linkage import datasets
from safecity.linkage import person_index as pi

BASELINES = {
    "febrl3": {"pairs": 18151, "blocking_recall": 0.9989, "f1": 0.9988, "seconds": 5.0},
    "febrl4": {"pairs": 30399, "blocking_recall": 0.9998, "f1": 0.9998, "seconds": 10.6},
    "historical-50k": {
        "pairs": 7084965,
        "blocking_recall": 0.905,
        "f1": 0.854,
        "cluster_f1": 0.883,
        "seconds": 31.6,
    },
}


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def run(name: str) -> dict[str, Any]:
    base, _, part = name.partition(":")
    tables, link_type = datasets.load(base)
    if part:  # e.g. historical-50k:eval, the half not used to choose the blocking rules
        tables = [datasets.split_half(tables[0], part)]
    t0 = time.perf_counter()
    model = pi.train(tables, link_type=link_type)
    t_train = time.perf_counter() - t0
    pred = pi.predict(tables, model, retain=["truth"])
    t_pred = time.perf_counter() - t0
    total_true = pi.true_pair_count(tables, link_type)
    rows = pred.query(
        "SELECT match_probability, (truth_l = truth_r)::INT FROM {pairs} "
        "ORDER BY match_probability DESC"
    )
    best = (0.0, 0.0, 0.0, 1.0)
    tp = 0
    auto = model.thresholds.auto_link
    expected = pi.expected_f1_threshold(pred)
    cuts = {"auto_link": auto, "review": model.thresholds.review, "expected_f1": expected}
    at: dict[str, tuple[float, float, float]] = {}
    for k, (prob, hit) in enumerate(rows, start=1):
        tp += hit
        nxt = rows[k][0] if k < len(rows) else -1.0
        if nxt == prob:
            continue
        p, r = tp / k, tp / total_true
        if _f1(p, r) > best[0]:
            best = (_f1(p, r), p, r, float(prob))
        for cut_name, cut in cuts.items():
            if prob >= cut > nxt:
                at[cut_name] = (_f1(p, r), p, r)
    at_auto = at.get("auto_link")
    found = sum(hit for _, hit in rows)
    clusters = pi.cluster(pred)
    t_total = time.perf_counter() - t0
    cluster_f1 = _cluster_f1(tables, link_type, clusters)
    return {
        "dataset": name,
        "link_type": link_type,
        "records": sum(len(t) for t in tables),
        "true_pairs": total_true,
        "candidate_pairs": len(rows),
        "blocking_recall": round(found / total_true, 4),
        "best_f1": round(best[0], 4),
        "best_precision": round(best[1], 4),
        "best_recall": round(best[2], 4),
        "best_threshold": round(best[3], 4),
        "auto_link_threshold": auto,
        "f1_at_auto_link": None if at_auto is None else round(at_auto[0], 4),
        "p_r_at_auto_link": None
        if at_auto is None
        else [round(at_auto[1], 4), round(at_auto[2], 4)],
        "cluster_f1_at_auto_link": round(cluster_f1, 4),
        "product_thresholds": {
            name: {
                "threshold": round(cut, 4),
                "f1": round(at[name][0], 4) if name in at else None,
                "precision": round(at[name][1], 4) if name in at else None,
                "recall": round(at[name][2], 4) if name in at else None,
            }
            for name, cut in cuts.items()
        },
        "train_s": round(t_train, 1),
        "train_predict_s": round(t_pred, 1),
        "total_s": round(t_total, 1),
        "blocking_rules": model.splink_settings["blocking_rules_to_generate_predictions"],
        "baseline": BASELINES[base],
    }


def _cluster_f1(tables: Any, link_type: str, clusters: dict[str, str]) -> float:
    from collections import Counter

    truth: dict[str, str] = {}
    for i, table in enumerate(tables):
        for rec in table:
            key = (
                rec["unique_id"] if link_type == "dedupe_only" else f"input_{i}|{rec['unique_id']}"
            )
            truth[key] = rec["truth"]
    both = Counter((clusters[k], truth[k]) for k in truth)
    pred = Counter(clusters[k] for k in truth)
    true = Counter(truth.values())

    def pairs(c: Counter[Any]) -> int:
        return sum(n * (n - 1) // 2 for n in c.values())

    tp, np_, nt = pairs(both), pairs(pred), pairs(true)
    return _f1(tp / np_ if np_ else 0.0, tp / nt if nt else 0.0)


def main(argv: list[str]) -> int:
    names = argv or [*datasets.DATASETS, "historical-50k:eval"]
    results = []
    for name in names:
        res = run(name)
        results.append(res)
        b = res["baseline"]
        print(
            f"{name:15} pairs {res['candidate_pairs']:>9,} (base {b['pairs']:,})  "
            f"block recall {res['blocking_recall']:.4f} (base {b['blocking_recall']})  "
            f"best F1 {res['best_f1']:.4f} P {res['best_precision']:.4f} "
            f"R {res['best_recall']:.4f} "
            f"(base {b['f1']})  F1@auto {res['f1_at_auto_link']}  "
            f"F1@review {res['product_thresholds']['review']['f1']}  "
            f"F1@expected {res['product_thresholds']['expected_f1']['f1']} "
            f"(p>={res['product_thresholds']['expected_f1']['threshold']})  "
            f"cluster F1 {res['cluster_f1_at_auto_link']} "
            f"{res['total_s']}s (base {b['seconds']}s)",
            flush=True,
        )
    import duckdb
    import splink

    out = {
        "benchmark": "linkage_person",
        "command": "python benchmarks/linkage_person.py " + " ".join(names),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": __import__("os").cpu_count(),
        },
        "versions": {"splink": splink.__version__, "duckdb": duckdb.__version__},
        "results": results,
    }
    path = Path(__file__).parent / "results" / "linkage_person.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
