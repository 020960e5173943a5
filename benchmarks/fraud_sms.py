"""Scam-SMS text screening on the UCI SMS Spam Collection (issue 9): 70/30 split and 5-fold CV.

    .venv/bin/python benchmarks/fraud_sms.py [--seed 0] [--folds 5]

Spam is the positive class. Variants, each fitted on the training part only:

- ``readme_features``: the README baseline's features re-run (TF-IDF word 1–2 + char_wb
  3–5, no text normalisation, logistic regression C=10, threshold 0.5);
- ``text_model``: :func:`train_text_model` as shipped (URL/money/phone/digit placeholders,
  word 1–2 + char_wb 2–5 sublinear TF-IDF, balanced LR C=30, threshold 0.5);
- ``text_model_inner_cv`` (first 70/30 split and every CV fold): the same features with C
  in {10, 30, 100} and the decision threshold chosen by 3-fold CV inside the training part
  (max spam F1 on out-of-fold scores), then refitted on the whole training part.

The shipped defaults (C=30, balanced, char 2–5, placeholders) were picked while exploring
5-fold CV on this same file, so ``text_model``'s CV figure is mildly optimistic; the
inner-CV variant chooses C and the threshold without seeing the test part.

Reported: accuracy, spam precision/recall/F1, ROC-AUC, AP, recall at 1% FPR.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from rich.progress import track
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import FeatureUnion, Pipeline

from _fraud_common import load_sms, mean_sd, print_table, write_result
from safecity.fraud.ml import metrics
from safecity.fraud.ml.text_model import build_pipeline, train_text_model

KEYS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "recall_at_1pct_fpr",
    "threshold",
    "seconds",
)
C_GRID = (10.0, 30.0, 100.0)
BASELINE = {
    "source": "uci-sms-spam-collection/README.md, TF-IDF word 1-2 + char 3-5 + LR",
    "split_70_30": {"accuracy": 0.9898, "f1": 0.961, "roc_auc": 0.996, "recall_at_1pct_fpr": 0.973},
    "cv5": {"accuracy": 0.9892, "accuracy_sd": 0.0026, "f1": 0.958},
}
GOALS = {"f1": 0.96, "recall_at_1pct_fpr": "reported"}


def readme_pipeline(seed: int) -> Any:
    features = FeatureUnion(
        [
            ("word", TfidfVectorizer(ngram_range=(1, 2))),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5))),
        ]
    )
    lr = LogisticRegression(C=10.0, max_iter=5000, random_state=seed)
    return Pipeline([("features", features), ("lr", lr)])


def inner_cv(texts: list[str], y: np.ndarray, seed: int) -> tuple[float, float]:
    """(C, threshold) maximising out-of-fold spam F1 over 3 folds of the training part."""
    oof = {c: np.zeros(len(y)) for c in C_GRID}
    for tr, va in StratifiedKFold(3, shuffle=True, random_state=seed).split(texts, y):
        feats = build_pipeline(seed=seed).named_steps["features"]
        xtr = feats.fit_transform([texts[i] for i in tr])
        xva = feats.transform([texts[i] for i in va])
        for c in C_GRID:
            lr = clone(build_pipeline(c=c, seed=seed).named_steps["lr"]).fit(xtr, y[tr])
            oof[c][va] = lr.predict_proba(xva)[:, 1]
    best: tuple[float, float, float] = (-1.0, 0.0, 0.5)
    for c in C_GRID:
        t = metrics.best_threshold(y, oof[c], metric="f1")
        f1 = metrics.summary(y, oof[c], t)["f1"]
        if f1 > best[0]:
            best = (f1, c, t)
    return best[1], best[2]


def evaluate(
    texts: list[str],
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
    *,
    inner: bool = True,
) -> dict[str, dict[str, Any]]:
    tr_t = [texts[i] for i in train]
    te_t = [texts[i] for i in test]
    out: dict[str, dict[str, Any]] = {}

    def record(name: str, scores: np.ndarray, threshold: float, t0: float, **extra: Any) -> None:
        res = metrics.summary(y[test], scores, threshold)
        res["seconds"] = round(time.perf_counter() - t0, 2)
        out[name] = {**{k: res[k] for k in KEYS}, **extra}

    t0 = time.perf_counter()
    base = readme_pipeline(seed).fit(tr_t, y[train])
    record("readme_features", base.predict_proba(te_t)[:, 1], 0.5, t0)

    t0 = time.perf_counter()
    model = train_text_model(tr_t, y[train], seed=seed)
    record("text_model", model.predict_proba(te_t), model.threshold, t0)

    if not inner:
        return out
    t0 = time.perf_counter()
    c, thr = inner_cv(tr_t, y[train], seed)
    tuned = train_text_model(tr_t, y[train], seed=seed, c=c, threshold=thr)
    record("text_model_inner_cv", tuned.predict_proba(te_t), tuned.threshold, t0, c=c)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument(
        "--more-splits", default="1,2,3,4", help="extra 70/30 seeds (without the inner-CV variant)"
    )
    args = ap.parse_args()
    texts, y = load_sms()
    t_start = time.perf_counter()
    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=0.3, stratify=y, random_state=args.seed)
    split = evaluate(texts, y, train, test, args.seed)
    more = [int(v) for v in args.more_splits.split(",") if v.strip()]
    repeated: list[dict[str, dict[str, Any]]] = [split]
    for seed in track(more, description="70/30 splits"):
        tr, te = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
        repeated.append(evaluate(texts, y, tr, te, seed, inner=False))
    split_seeds = {v: mean_sd([r[v] for r in repeated], KEYS) for v in repeated[-1]}
    folds: list[dict[str, dict[str, Any]]] = []
    skf = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    for tr, te in track(list(skf.split(texts, y)), description="folds"):
        folds.append(evaluate(texts, y, tr, te, args.seed))
    cv = {v: mean_sd([f[v] for f in folds], KEYS) for v in split}
    cols = ["variant", "accuracy", "precision", "recall", "spam F1", "ROC-AUC", "AP", "R@1%FPR"]
    print_table(
        f"SMS spam, stratified 70/30 split (seed {args.seed})",
        cols,
        [[v, *(r[k] for k in KEYS[:7])] for v, r in split.items()],
    )
    print_table(
        f"SMS spam, 70/30 splits, seeds {[args.seed, *more]} (mean±sd)",
        cols,
        [[v, *(r[k] for k in KEYS[:7])] for v, r in split_seeds.items()],
    )
    print_table(
        f"SMS spam, stratified {args.folds}-fold CV (mean±sd)",
        cols,
        [[v, *(r[k] for k in KEYS[:7])] for v, r in cv.items()],
    )
    write_result(
        "fraud_sms",
        {
            "protocol": {
                "split": f"train_test_split(test_size=0.3, stratify=y, random_state={args.seed})",
                "cv": f"StratifiedKFold({args.folds}, shuffle=True, random_state={args.seed})",
            },
            "rows": len(y),
            "spam": int(y.sum()),
            "baseline": BASELINE,
            "goals": GOALS,
            "split_70_30": split,
            "split_70_30_seeds": [args.seed, *more],
            "split_70_30_repeated": split_seeds,
            "cv": cv,
            "cv_inner_choices": [f["text_model_inner_cv"]["c"] for f in folds],
            "cv_folds": folds,
            "seconds_total": round(time.perf_counter() - t_start, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
