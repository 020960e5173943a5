"""Crime-series linkage: which other crimes were likely committed by the same offender.

One code path serves the product, the CLI and the benchmark:

    model = train(records, offenders, spec)       # solved cases -> LR and LightGBM
    index = SeriesIndex(model, records)           # every crime, solved or not
    index.rank_for("C:17", k=10)                  # top-k crimes, score, contributions
    model.save(path); SeriesModel.load(path)      # versioned JSON

Training pairs are all pairs of solved crimes at most ``max_gap_days`` apart, labelled
linked when the two crimes share an offender. Both a logistic regression (its C chosen by
grouped inner cross-validation) and a LightGBM model (its size chosen the same way) are
fitted; ``kind="auto"`` keeps whichever has the higher inner cross-validated AUC. Every
score comes with each feature's contribution to the log-odds: coefficient x standardised
value for the logistic regression, LightGBM's ``pred_contrib`` (TreeSHAP) for boosting;
contributions plus the baseline equal the logit.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]
from sklearn.model_selection import GroupKFold  # type: ignore[import-untyped]

from safecity.linkage import series_features as sf
from safecity.platform.errors import InvalidInput, NotFound

MODEL_FORMAT = "safecity.crime-series"
MODEL_VERSION = 1
Kind = Literal["logistic", "gbm"]
LR_GRID = (0.001, 0.01, 0.1, 1.0)
GBM_GRID = ({"num_leaves": 7}, {"num_leaves": 15})
GBM_ROUNDS = (60, 120, 200, 300)
GBM_BASE: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 63,
    "num_threads": 1,
    "deterministic": True,
    "verbose": -1,
}


@dataclass
class Fitted:
    """One fitted scorer: its kind, parameters, inner-CV AUC and how to reproduce it."""

    kind: Kind
    params: dict[str, Any]
    inner_auc: float
    coef: list[float] = field(default_factory=list)
    intercept: float = 0.0
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    booster: str = ""
    _booster: lgb.Booster | None = field(default=None, repr=False)

    def logit_and_contrib(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logit, per-feature contributions, baseline) for each row of ``x``."""
        if self.kind == "logistic":
            z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
            contrib = z * np.asarray(self.coef)
            base = np.full(len(x), self.intercept)
            return contrib.sum(axis=1) + base, contrib, base
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.booster)
        raw = np.asarray(self._booster.predict(x, pred_contrib=True))
        return raw.sum(axis=1), raw[:, :-1], raw[:, -1]

    def logit(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "logistic":
            z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
            return np.asarray(z @ np.asarray(self.coef) + self.intercept)
        if self._booster is None:
            self._booster = lgb.Booster(model_str=self.booster)
        return np.asarray(self._booster.predict(x, raw_score=True))

    def to_json(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in ("kind", "params", "inner_auc")}
        if self.kind == "logistic":
            doc |= {k: getattr(self, k) for k in ("coef", "intercept", "mean", "scale")}
        else:
            doc["booster"] = self.booster
        return doc


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float) -> Fitted:
    """A logistic regression on standardised features (no tuning; ``fit`` tunes C)."""
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    lr = LogisticRegression(C=c, solver="newton-cholesky", max_iter=200)
    lr.fit((x - mean) / scale, y)
    return Fitted(
        "logistic",
        {"C": c},
        math.nan,
        coef=[float(v) for v in lr.coef_[0]],
        intercept=float(lr.intercept_[0]),
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
    )


def _fit_gbm(x: np.ndarray, y: np.ndarray, params: Mapping[str, Any], seed: int) -> Fitted:
    p = {**GBM_BASE, **params, "seed": seed}
    rounds = int(p.pop("num_boost_round", max(GBM_ROUNDS)))
    booster = lgb.train(p, lgb.Dataset(x, y), num_boost_round=rounds)
    return Fitted(
        "gbm", {**params, "num_boost_round": rounds}, math.nan, booster=booster.model_to_string()
    )


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else math.nan


def fit(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, kind: Kind, *, seed: int = 0, inner: int = 3
) -> Fitted:
    """Fit one scorer, choosing its hyper-parameters by grouped inner cross-validation.

    Only the rows given are used (in a benchmark: the training fold), so the choice never
    sees test pairs. LR: C from :data:`LR_GRID`; LightGBM: leaves from :data:`GBM_GRID`
    times rounds from :data:`GBM_ROUNDS` (one fit per leaves setting, scored at each
    round count).
    """
    if y.sum() < inner or (len(y) - y.sum()) < inner:
        raise InvalidInput("training needs linked and unlinked pairs of solved crimes")
    folds = list(GroupKFold(inner, shuffle=True, random_state=seed).split(x, y, groups))
    cands: list[tuple[Any, int]] = (
        [(c, 0) for c in LR_GRID]
        if kind == "logistic"
        else [(g, r) for g in GBM_GRID for r in GBM_ROUNDS]
    )
    oof = {c: np.full(len(y), np.nan) for c in range(len(cands))}
    for tr, te in folds:
        if kind == "logistic":
            for c, (cval, _) in enumerate(cands):
                oof[c][te] = fit_logistic(x[tr], y[tr], float(cval)).logit(x[te])
            continue
        for g in GBM_GRID:
            p = {**GBM_BASE, **g, "seed": seed}
            b = lgb.train(p, lgb.Dataset(x[tr], y[tr]), num_boost_round=max(GBM_ROUNDS))
            for c, (gc, r) in enumerate(cands):
                if gc is g:
                    oof[c][te] = b.predict(x[te], num_iteration=r, raw_score=True)
    # one AUC over the pooled inner out-of-fold scores: steadier than a mean of per-fold
    # AUCs when a fold holds only a few dozen links
    scores = [_auc(y, oof[c]) for c in range(len(cands))]
    best = int(np.nanargmax(scores))
    score, (cand, n_rounds) = scores[best], cands[best]
    if kind == "logistic":
        out = fit_logistic(x, y, float(cand))
    else:
        out = _fit_gbm(x, y, {**cand, "num_boost_round": n_rounds}, seed)
    out.inner_auc = score
    return out


@dataclass
class SeriesModel:
    """A trained crime-series model: feature spec, MO rarity table and the chosen scorer."""

    spec: sf.FeatureSpec
    rarity: dict[str, dict[str, float]]
    scorer: Fitted
    max_gap_days: float = 365.0
    alternatives: dict[str, float] = field(default_factory=dict)
    trained_at: str = ""

    @property
    def feature_names(self) -> list[str]:
        return self.spec.names()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "spec": self.spec.to_json(),
            "rarity": self.rarity,
            "feature_names": self.feature_names,
            "scorer": self.scorer.to_json(),
            "max_gap_days": self.max_gap_days,
            "alternatives_inner_auc": self.alternatives,
            "trained_at": self.trained_at,
            "versions": {p: version(p) for p in ("scikit-learn", "lightgbm", "numpy")},
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> SeriesModel:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"cannot read crime-series model {path}: {exc}") from None
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            raise InvalidInput(f"{path} is not a crime-series model file")
        if doc.get("version") != MODEL_VERSION:
            raise InvalidInput(
                f"{path} is crime-series model version {doc.get('version')}; this build "
                f"reads version {MODEL_VERSION}: retrain the model"
            )
        try:
            spec = sf.FeatureSpec.from_json(doc["spec"])
            s = doc["scorer"]
            if s["kind"] not in ("logistic", "gbm"):
                raise InvalidInput(f"{path}: unknown scorer kind {s['kind']!r}")
            scorer = Fitted(s["kind"], dict(s["params"]), float(s["inner_auc"]))
            for key in ("coef", "intercept", "mean", "scale", "booster"):
                if key in s:
                    setattr(scorer, key, s[key])
            if scorer.kind == "gbm":
                scorer._booster = lgb.Booster(model_str=scorer.booster)
            rarity, max_gap = dict(doc["rarity"]), float(doc["max_gap_days"])
        except (KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as exc:
            raise InvalidInput(f"{path}: damaged crime-series model ({exc!r})") from None
        if doc.get("feature_names") != spec.names():
            raise InvalidInput(f"{path}: feature list does not match this build; retrain")
        return cls(
            spec,
            rarity,
            scorer,
            max_gap,
            doc.get("alternatives_inner_auc", {}),
            doc.get("trained_at", ""),
        )


def candidate_pairs(
    table: sf.CrimeTable, members: Sequence[int], max_gap_days: float
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j in ``members`` order) whose window midpoints are <= max_gap_days apart."""
    idx = np.asarray(members, dtype=np.int64)
    a, b = np.triu_indices(len(idx), 1)
    i, j = idx[a], idx[b]
    mid = (table.t0 + table.t1) / 2
    keep = np.abs(mid[i] - mid[j]) / 24.0 <= max_gap_days
    return i[keep], j[keep]


def linked(
    table: sf.CrimeTable, offenders: Mapping[str, Iterable[str]], i: np.ndarray, j: np.ndarray
) -> np.ndarray:
    """1 where the two crimes share an offender, else 0."""
    sets = [frozenset(offenders.get(c, ())) for c in table.ids]
    return np.array([1 if sets[a] & sets[b] else 0 for a, b in zip(i, j, strict=True)])


def train(
    records: Iterable[Mapping[str, Any]],
    offenders: Mapping[str, Iterable[str]],
    spec: sf.FeatureSpec,
    *,
    kind: Kind | Literal["auto"] = "auto",
    max_gap_days: float = 365.0,
    seed: int = 0,
) -> SeriesModel:
    """Train on the solved crimes among ``records`` (``offenders``: crime id -> offender ids).

    Unsolved crimes are kept as context for the neighbour-rank features and for the MO
    rarity table (neither uses labels).
    """
    crimes = sf.parse_crimes(records, spec)
    rarity = sf.category_rarity(crimes, spec)
    table = sf.CrimeTable(crimes, spec, rarity)
    solved = [k for k, c in enumerate(crimes) if offenders.get(c.id)]
    i, j = candidate_pairs(table, solved, max_gap_days)
    y = linked(table, offenders, i, j)
    x = sf.pair_features(table, i, j)
    kinds: list[Kind] = ["logistic", "gbm"] if kind == "auto" else [kind]
    fits = {k: fit(x, y, i, k, seed=seed) for k in kinds}
    chosen = max(fits.values(), key=lambda f: f.inner_auc)
    return SeriesModel(
        spec,
        rarity,
        chosen,
        max_gap_days,
        {k: round(f.inner_auc, 4) for k, f in fits.items()},
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


@dataclass(frozen=True)
class RankedCrime:
    """One candidate for the same series: score, log-odds, and why."""

    crime_id: str
    score: float
    logit: float
    baseline: float
    contributions: dict[str, float]
    facts: dict[str, Any]


class SeriesIndex:
    """A set of crimes scored by one model; ``rank_for`` ranks the others for one crime."""

    def __init__(self, model: SeriesModel, records: Iterable[Mapping[str, Any]]) -> None:
        self.model = model
        crimes = sf.parse_crimes(records, model.spec)
        self.table = sf.CrimeTable(crimes, model.spec, model.rarity)

    def _index(self, crime_id: str) -> int:
        try:
            return self.table.index[crime_id]
        except KeyError:
            raise NotFound(f"no crime {crime_id} in this crime set") from None

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Probability that each (crime, crime) pair shares an offender."""
        i = np.array([self._index(a) for a, _ in pairs], dtype=np.int64)
        j = np.array([self._index(b) for _, b in pairs], dtype=np.int64)
        if len(i) == 0:
            return []
        logit = self.model.scorer.logit(sf.pair_features(self.table, i, j))
        return [float(v) for v in 1.0 / (1.0 + np.exp(-logit))]

    def rank_for(self, crime_id: str, k: int = 10) -> list[RankedCrime]:
        """Top-k other crimes within the model's time horizon, best first, with reasons."""
        if k < 1:
            raise InvalidInput("k must be at least 1")
        a = self._index(crime_id)
        mid = (self.table.t0 + self.table.t1) / 2
        others = np.flatnonzero(np.abs(mid - mid[a]) / 24.0 <= self.model.max_gap_days)
        others = others[others != a].astype(np.int64)
        if len(others) == 0:
            return []
        i = np.full(len(others), a, dtype=np.int64)
        x = sf.pair_features(self.table, i, others)
        logit, contrib, base = self.model.scorer.logit_and_contrib(x)
        top = np.argsort(-logit, kind="stable")[:k]
        names = self.model.feature_names
        out = []
        for r in top.tolist():
            b = int(others[r])
            parts = {n: round(float(v), 4) for n, v in zip(names, contrib[r], strict=True)}
            out.append(
                RankedCrime(
                    crime_id=self.table.ids[b],
                    score=float(1.0 / (1.0 + math.exp(-float(logit[r])))),
                    logit=float(logit[r]),
                    baseline=float(base[r]),
                    contributions=dict(sorted(parts.items(), key=lambda kv: -abs(kv[1]))),
                    facts=self._facts(a, b),
                )
            )
        return out

    def _facts(self, a: int, b: int) -> dict[str, Any]:
        t = self.table
        gap = abs((t.t0[a] + t.t1[a]) - (t.t0[b] + t.t1[b])) / 48.0
        mo = {}
        for f in t.spec.mo_fields:
            va, vb = t.crimes[a].mo.get(f), t.crimes[b].mo.get(f)
            mo[f] = "missing" if va is None or vb is None else ("same" if va == vb else "different")
        return {
            "distance_m": round(float(math.hypot(t.x[a] - t.x[b], t.y[a] - t.y[b])), 1),
            "gap_days": round(float(gap), 2),
            "mo": mo,
        }


def load_crimelinkage(folder: Path) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Records and offenders of the crimelinkage example data (``crimes.csv``, ``offenders.csv``).

    Times are HHMM strings; ``2400`` is read as midnight at the end of the day, and a
    window whose end time is earlier than its start on the same date (14 of 490 rows, e.g.
    23:00-02:30) is read as ending the next day: the source records overnight windows
    that way. The product's own parser rejects such windows; this loader repairs them.
    """
    import csv

    def when(date: str, hhmm: str) -> dt.datetime:
        hhmm = hhmm.strip()
        if len(hhmm) != 4 or not hhmm.isdigit():
            raise InvalidInput(f"bad HHMM time {hhmm!r} in {folder}/crimes.csv")
        return dt.datetime.fromisoformat(date) + dt.timedelta(
            hours=int(hhmm[:2]), minutes=int(hhmm[2:])
        )

    records: list[dict[str, Any]] = []
    with (folder / "crimes.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            start = when(r["DATE_FROM"], r["TIME_FROM"])
            end = when(r["DATE_TO"], r["TIME_TO"])
            if end < start and r["DATE_TO"] == r["DATE_FROM"]:
                end += dt.timedelta(days=1)
            records.append(
                {
                    "id": r["crimeID"],
                    "x": float(r["X"]),
                    "y": float(r["Y"]),
                    "time_from": start,
                    "time_to": end,
                    "mo": {f: r[f] for f in ("MO1", "MO2", "MO3")},
                }
            )
    offenders: dict[str, set[str]] = {}
    with (folder / "offenders.csv").open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            offenders.setdefault(r["crimeID"], set()).add(r["offenderID"])
    return records, offenders


CRIMELINKAGE_SPEC = sf.FeatureSpec(("MO1", "MO2", "MO3"))


def ranking_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUC, share of links found at 5% false-positive rate, precision of the top 50 / 100."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, score)
    order = np.argsort(-score, kind="stable")
    return {
        "auc": float(roc_auc_score(y, score)),
        "tpr_at_5fpr": float(np.interp(0.05, fpr, tpr)),
        "p_at_50": float(y[order[:50]].mean()),
        "p_at_100": float(y[order[:100]].mean()),
    }
