"""Crime-series linkage on crimelinkage-synthetic: the product model vs the LR baseline.

Protocol (BASELINES.md): all pairs of solved crimes at most 365 days apart (75,855 pairs,
255 linked), 5-fold cross-validation grouped by the pair's first crime
(``GroupKFold(5, shuffle=True, random_state=seed)``, seeds 0-4). Out-of-fold scores of
the five folds are pooled and scored once per seed (AUC, share of links found at 5%
false-positive rate, precision of the top 50 / 100 pairs); figures are mean ± sd over the
seeds. Hyper-parameters (LR's C, LightGBM's leaves and rounds) are chosen by grouped inner
cross-validation on the training fold only; ``product`` is whichever of the two has the
higher inner AUC in that fold (what ``series.train(kind="auto")`` does).

``baseline_lr`` is the baseline rerun: a logistic regression (standardised, C=1) on
Porter's ``compareCrimes`` features (distance in metres, gap in days, time-of-day and
day-of-week circular differences, three MO match/mismatch flags).

``strict`` is a second split where no crime is in both train and test: the solved crimes
are split into 5 folds; a fold's test pairs have both crimes in it, its training pairs
none (pairs across folds are not used). Usage:

    .venv/bin/python benchmarks/linkage_series.py [--seeds 0 1 2 3 4] [--jobs 1]

Data root: ``SAFECITY_BENCH_DATA`` (as for the other linkage benchmarks), default
``/work/shared/benchmarks``; the set lives in ``linkage/crimelinkage-synthetic``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sklearn.model_selection import GroupKFold, KFold

from _common import machine  # benchmarks/_common.py (run as a script)
from safecity.linkage import datasets
from safecity.linkage import series as ser
from safecity.linkage import series_features as sf

GOALS = {"auc": 0.94, "tpr_at_5fpr": 0.82, "p_at_50": 0.75}
BASELINE = {"auc": 0.925, "tpr_at_5fpr": 0.765, "p_at_50": 0.68, "p_at_100": 0.56}
MODELS = ("baseline_lr", "lr", "gbm", "product")
BASE_FEATURES = ("log_distance", "log_gap", "tod_diff", "dow_diff")


def folder() -> Path:
    return datasets.bench_root() / "crimelinkage-synthetic"


def load() -> dict[str, Any]:
    """Pairs, labels, product features and the baseline's raw features."""
    records, offenders = ser.load_crimelinkage(folder())
    spec = ser.CRIMELINKAGE_SPEC
    crimes = sf.parse_crimes(records, spec)
    table = sf.CrimeTable(crimes, spec, sf.category_rarity(crimes, spec))
    solved = [k for k, c in enumerate(crimes) if offenders.get(c.id)]
    i, j = ser.candidate_pairs(table, solved, 365.0)
    y = ser.linked(table, offenders, i, j)
    x = sf.pair_features(table, i, j)
    names = spec.names()
    col = {n: x[:, names.index(n)] for n in names}
    base = np.column_stack(
        [
            np.expm1(col["log_distance"]) * 100.0,  # metres
            np.expm1(col["log_gap"]),  # days
            col["tod_diff"],
            col["dow_diff"],
            *(col[f"mo_{f}"] for f in spec.mo_fields),
        ]
    )
    return {
        "i": i,
        "j": j,
        "y": y,
        "x": x,
        "base": base,
        "names": names,
        "crimes": len(crimes),
        "solved": np.asarray(solved),
    }


def splits(d: dict[str, Any], protocol: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    if protocol == "grouped":
        gkf = GroupKFold(5, shuffle=True, random_state=seed)
        return list(gkf.split(d["x"], d["y"], d["i"]))
    out = []
    for _, test_crimes in KFold(5, shuffle=True, random_state=seed).split(d["solved"]):
        inside = (
            np.isin(d["i"], d["solved"][test_crimes]),
            np.isin(d["j"], d["solved"][test_crimes]),
        )
        test = np.flatnonzero(inside[0] & inside[1])
        train = np.flatnonzero(~inside[0] & ~inside[1])
        out.append((train, test))
    return out


def run_fold(d: dict[str, Any], tr: np.ndarray, te: np.ndarray, seed: int) -> dict[str, Any]:
    x, y, g = d["x"], d["y"], d["i"]
    base = ser.fit_logistic(d["base"][tr], y[tr], 1.0)
    lr = ser.fit(x[tr], y[tr], g[tr], "logistic", seed=seed)
    gbm = ser.fit(x[tr], y[tr], g[tr], "gbm", seed=seed)
    chosen = lr if lr.inner_auc >= gbm.inner_auc else gbm
    scores = {
        "baseline_lr": base.logit(d["base"][te]),
        "lr": lr.logit(x[te]),
        "gbm": gbm.logit(x[te]),
    }
    scores["product"] = scores["lr"] if chosen is lr else scores["gbm"]
    return {
        "test": te,
        "scores": scores,
        "chosen": chosen.kind,
        "lr_params": lr.params,
        "gbm_params": gbm.params,
        "inner_auc": {"lr": round(lr.inner_auc, 4), "gbm": round(gbm.inner_auc, 4)},
    }


_DATA: dict[str, Any] = {}


def _task(args: tuple[str, int, int]) -> tuple[str, int, dict[str, Any]]:
    protocol, seed, fold = args
    if not _DATA:
        _DATA.update(load())
    tr, te = splits(_DATA, protocol, seed)[fold]
    return protocol, seed, run_fold(_DATA, tr, te, seed)


def summarise(per_seed: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        vals = np.array([m[key] for m in per_seed])
        out[key] = {"mean": round(float(vals.mean()), 4), "sd": round(float(vals.std()), 4)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--protocols", nargs="+", default=["grouped", "strict"])
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "linkage_series.json"
    )
    args = ap.parse_args()
    console = Console()
    t0 = time.perf_counter()
    d = load()
    _DATA.update(d)
    y = d["y"]
    single = {
        n: round(float(max(a, 1 - a)), 4)
        for n, a in (
            (n, ser.ranking_metrics(y, d["x"][:, k])["auc"]) for k, n in enumerate(d["names"])
        )
    }
    tasks = [(p, s, f) for p in args.protocols for s in args.seeds for f in range(5)]
    folds: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with Progress(console=console) as bar:
        job = bar.add_task("folds", total=len(tasks))
        if args.jobs > 1:
            with ProcessPoolExecutor(args.jobs) as pool:
                for p, s, res in pool.map(_task, tasks):
                    folds.setdefault((p, s), []).append(res)
                    bar.advance(job)
        else:
            for t in tasks:
                p, s, res = _task(t)
                folds.setdefault((p, s), []).append(res)
                bar.advance(job)
    results: dict[str, Any] = {}
    for p in args.protocols:
        per_model: dict[str, list[dict[str, float]]] = {m: [] for m in MODELS}
        chosen: list[str] = []
        params: list[dict[str, Any]] = []
        n_pairs = n_links = 0
        for s in args.seeds:
            test = np.concatenate([f["test"] for f in folds[(p, s)]])
            n_pairs, n_links = len(test), int(y[test].sum())
            for m in MODELS:
                sc = np.concatenate([f["scores"][m] for f in folds[(p, s)]])
                per_model[m].append(ser.ranking_metrics(y[test], sc))
            chosen += [f["chosen"] for f in folds[(p, s)]]
            params += [
                {
                    "seed": s,
                    "lr": f["lr_params"],
                    "gbm": f["gbm_params"],
                    "inner_auc": f["inner_auc"],
                }
                for f in folds[(p, s)]
            ]
        results[p] = {
            "scored_pairs": n_pairs,
            "scored_links": n_links,
            "models": {m: summarise(v) for m, v in per_model.items()},
            "product_choice": {k: chosen.count(k) for k in ("logistic", "gbm")},
            "fold_params": params,
        }
    goals = {}
    prod = results.get("grouped", {}).get("models", {}).get("product")
    if prod:
        for k, goal in GOALS.items():
            got = prod[k]["mean"]
            goals[k] = {
                "goal": goal,
                "measured": got,
                "met": got >= goal,
                "gap": round(max(0.0, goal - got), 4),
            }
    table = Table(title="crimelinkage-synthetic: mean ± sd over seeds (pooled out-of-fold)")
    for c in ("protocol", "model", "AUC", "TPR@5%FPR", "P@50", "P@100"):
        table.add_column(c)
    for p, r in results.items():
        for m, v in r["models"].items():
            cells = [
                f"{v[k]['mean']:.3f} ± {v[k]['sd']:.3f}"
                for k in ("auc", "tpr_at_5fpr", "p_at_50", "p_at_100")
            ]
            table.add_row(p, m, *cells)
    console.print(table)
    for k, g in goals.items():
        console.print(
            f"goal {k} >= {g['goal']}: measured {g['measured']:.4f} -> "
            + ("met" if g["met"] else f"NOT met, gap {g['gap']}")
        )
    out = {
        "benchmark": "linkage_series",
        "command": "python benchmarks/linkage_series.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {p: version(p) for p in ("scikit-learn", "lightgbm", "numpy")},
        "data": {
            "folder": str(folder()),
            "crimes": d["crimes"],
            "solved": len(d["solved"]),
            "pairs": len(y),
            "links": int(y.sum()),
        },
        "seeds": args.seeds,
        "features": d["names"],
        "single_feature_auc": single,
        "baseline_published": BASELINE,
        "goals": goals,
        "results": results,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out} in {out['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
