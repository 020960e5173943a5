"""LightGBM on named numeric features: the shared core of the number and site models.

A :class:`TabularModel` holds a LightGBM booster, the declared input feature names, the
derived features it adds itself (ratios, missing counts; see :class:`Derived`) and the
decision threshold chosen on validation data. Inputs may be a 2-D array in declared column
order, one row, a mapping ``name -> value`` or a list of mappings; missing values are
``None``/NaN and LightGBM routes them natively. Reason codes are LightGBM's TreeSHAP
contributions (``pred_contrib=True``, log-odds units), so every alert can say which
features pushed the score up.

:func:`fit_booster` trains with early stopping on a validation set (an internal stratified
20% holdout when the caller gives none) and picks the threshold on that validation set,
never on the data later used for testing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import lightgbm as lgb
import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

from safecity.fraud.ml import metrics
from safecity.platform.errors import InvalidInput

Rows = ArrayLike | Mapping[str, float | None] | Sequence[Mapping[str, float | None]]

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 10,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "verbosity": -1,
    "num_threads": 1,  # small data: threads cost more than they give on shared cores
}


PREDICT_THREADS = 1
"""Prediction is online (a row or a few at a time): one thread, because LightGBM's
default thread pool costs 2-10 ms per call on a busy 2-core machine against 0.1 ms."""


@dataclass(frozen=True, slots=True)
class ReasonCode:
    """One feature's share of a score: its value and contribution (log-odds or coef×value)."""

    feature: str
    value: float | None
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution}


@dataclass(frozen=True, slots=True)
class Derived:
    """Features the model computes from its inputs: ratios and missing-value indicators.

    ``ratios`` are ``(name, numerator, denominator)``; a zero or missing denominator gives a
    missing ratio. ``missing_groups`` are ``(name, features)``: 1 when all are missing.
    ``missing_count`` adds the number of missing inputs.
    """

    ratios: tuple[tuple[str, str, str], ...] = ()
    missing_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    missing_count: bool = False

    def names(self) -> list[str]:
        out = [r[0] for r in self.ratios] + [g[0] for g in self.missing_groups]
        return [*out, "n_missing"] if self.missing_count else out

    def check(self, inputs: Sequence[str]) -> None:
        known = set(inputs)
        used = {n for r in self.ratios for n in r[1:]} | {
            n for g in self.missing_groups for n in g[1]
        }
        if used - known:
            raise InvalidInput(f"derived features use unknown inputs: {sorted(used - known)}")
        clash = set(self.names()) & known
        if clash:
            raise InvalidInput(f"derived feature names clash with inputs: {sorted(clash)}")

    def apply(self, x: NDArray[np.float64], inputs: Sequence[str]) -> NDArray[np.float64]:
        col = {n: x[:, i] for i, n in enumerate(inputs)}
        extra: list[NDArray[np.float64]] = []
        with np.errstate(divide="ignore", invalid="ignore"):
            for _, num, den in self.ratios:
                d = col[den]
                extra.append(np.where(d == 0, np.nan, col[num] / d))
        for _, group in self.missing_groups:
            extra.append(np.all(np.isnan(np.column_stack([col[g] for g in group])), axis=1) * 1.0)
        if self.missing_count:
            extra.append(np.isnan(x).sum(axis=1).astype(float))
        return np.column_stack([x, *extra]) if extra else x

    def to_json(self) -> dict[str, Any]:
        return {
            "ratios": [list(r) for r in self.ratios],
            "missing_groups": [[g[0], list(g[1])] for g in self.missing_groups],
            "missing_count": self.missing_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Derived:
        return cls(
            ratios=tuple((str(a), str(b), str(c)) for a, b, c in data.get("ratios", [])),
            missing_groups=tuple(
                (str(n), tuple(str(g) for g in gs)) for n, gs in data.get("missing_groups", [])
            ),
            missing_count=bool(data.get("missing_count", False)),
        )


def _value(v: Any) -> float:
    return math.nan if v is None else float(v)


def to_array(x: Rows, names: Sequence[str], kind: str) -> NDArray[np.float64]:
    """Rows (2-D array, one 1-D row, a mapping or a list of mappings) as a float matrix."""
    if isinstance(x, Mapping):
        x = [x]
    if isinstance(x, Sequence) and len(x) > 0 and isinstance(x[0], Mapping):
        known = set(names)
        rows: list[list[float]] = []
        for row in x:
            if not isinstance(row, Mapping):
                raise InvalidInput(f"{kind}: mix of mappings and arrays in one input")
            unknown = set(row) - known
            if unknown:
                raise InvalidInput(f"unknown features for {kind}: {sorted(unknown)}")
            rows.append([_value(row.get(n)) for n in names])
        arr = np.array(rows, dtype=float)
    else:
        try:
            arr = np.array(x, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{kind}: features must be numbers or missing ({exc})") from exc
        if arr.ndim == 1:
            arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise InvalidInput(f"{kind} expects {len(names)} features per row, got shape {arr.shape}")
    return arr


@dataclass
class TabularModel:
    """A trained LightGBM classifier over declared, named numeric inputs."""

    kind: ClassVar[str] = "tabular"
    payload_name: ClassVar[str] = "model.lgb.txt"

    booster: lgb.Booster
    input_names: list[str]
    threshold: float = 0.5
    derived: Derived = field(default_factory=Derived)

    @property
    def feature_names(self) -> list[str]:
        """Model columns: the declared inputs, then the derived features."""
        return [*self.input_names, *self.derived.names()]

    def matrix(self, x: Rows) -> NDArray[np.float64]:
        """Inputs as a float matrix in declared order (NaN = missing), derived columns added."""
        return self.derived.apply(to_array(x, self.input_names, self.kind), self.input_names)

    def predict_proba(self, x: Rows) -> NDArray[np.float64]:
        """Probability of the positive (fraud) class, one value per row."""
        return np.asarray(
            self.booster.predict(self.matrix(x), num_threads=PREDICT_THREADS), dtype=float
        )

    def predict(self, x: Rows) -> NDArray[np.bool_]:
        """True where the probability reaches the stored threshold."""
        return self.predict_proba(x) >= self.threshold

    def reason_codes(self, x: Rows, top: int = 3) -> list[ReasonCode]:
        """The ``top`` features that pushed this one example's score up the most (TreeSHAP)."""
        m = self.matrix(x)
        if m.shape[0] != 1:
            raise InvalidInput("reason_codes explains one example at a time")
        contrib = np.asarray(
            self.booster.predict(m, pred_contrib=True, num_threads=PREDICT_THREADS), dtype=float
        )[0, :-1]
        order = np.argsort(-contrib, kind="stable")[:top]
        names = self.feature_names
        return [
            ReasonCode(
                feature=names[i],
                value=None if math.isnan(m[0, i]) else float(m[0, i]),
                contribution=float(contrib[i]),
            )
            for i in order
        ]

    def to_payload(self) -> bytes:
        return str(self.booster.model_to_string()).encode("utf-8")

    def config(self) -> dict[str, Any]:
        return {
            "input_names": list(self.input_names),
            "feature_names": self.feature_names,
            "derived": self.derived.to_json(),
        }

    @classmethod
    def from_payload(cls, payload: bytes, config: Mapping[str, Any], threshold: float) -> Self:
        booster = lgb.Booster(model_str=payload.decode("utf-8"))
        return cls(
            booster=booster,
            input_names=[str(n) for n in config["input_names"]],
            threshold=threshold,
            derived=Derived.from_json(config.get("derived", {})),
        )


@dataclass(frozen=True, slots=True)
class FitResult:
    booster: lgb.Booster
    threshold: float
    best_iteration: int
    val_score: NDArray[np.float64]


def fit_booster(
    x: NDArray[np.float64],
    y: NDArray[np.int_],
    *,
    seed: int,
    x_val: NDArray[np.float64] | None = None,
    y_val: NDArray[np.int_] | None = None,
    params: Mapping[str, Any] | None = None,
    max_rounds: int = 2000,
    early_stopping: int = 100,
    refit_on_all: bool = False,
    threshold_metric: str = "macro_f1",
    target_fpr: float | None = None,
) -> FitResult:
    """Train a booster with early stopping on validation data and choose its threshold there.

    Without ``x_val`` a stratified 20% of ``x`` is held out (``seed``). ``refit_on_all``
    retrains on train + validation for ``1.2 × best_iteration`` rounds (more data, same
    model size); the threshold still comes from the validation scores of the first model.
    The threshold maximises ``threshold_metric`` or, with ``target_fpr``, keeps the
    validation false-positive rate within it.
    """
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) != 2:
        raise InvalidInput("training labels must contain both classes (0 and 1)")
    if x_val is None or y_val is None:
        idx = np.arange(len(y))
        tr, va = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
        x, x_val, y, y_val = x[tr], x[va], y[tr], y[va]
    y_val = np.asarray(y_val).astype(int)
    p = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "deterministic": True}
    train_set = lgb.Dataset(x, y, free_raw_data=False)
    val_set = lgb.Dataset(x_val, y_val, reference=train_set)
    booster = lgb.train(
        p,
        train_set,
        num_boost_round=max_rounds,
        valid_sets=[val_set],
        callbacks=[lgb.early_stopping(early_stopping, verbose=False)],
    )
    best = max(1, int(booster.best_iteration or max_rounds))
    val_score = np.asarray(booster.predict(x_val, num_iteration=best), dtype=float)
    if target_fpr is not None:
        threshold = metrics.threshold_at_fpr(y_val, val_score, target_fpr)
    else:
        threshold = metrics.best_threshold(y_val, val_score, metric=threshold_metric)
    if refit_on_all:
        all_x = np.vstack([x, x_val])
        all_y = np.concatenate([y, y_val])
        booster = lgb.train(p, lgb.Dataset(all_x, all_y), num_boost_round=int(best * 1.2) + 1)
        best = booster.current_iteration()
    else:
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return FitResult(booster=booster, threshold=threshold, best_iteration=best, val_score=val_score)
