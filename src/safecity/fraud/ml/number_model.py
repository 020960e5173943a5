"""Scam-number classifier on per-number aggregate behaviour features.

Inputs are whatever aggregates the operator feed provides (call counts, distinct
contacts, SMS counts, data traffic, ARPU …), declared as a feature-name list at training
time and stored with the model. The model adds ratio features (calls per contact, per
active day …) for the inputs it recognises from :data:`RATIOS` and, unless switched off,
missing-data indicators (no call records, no ARPU history). Those indicators are strong in
the Sichuan data because of how it was collected; ``missingness=False`` trains without
them for deployments where missing data means nothing. The learner is LightGBM (see
:mod:`safecity.fraud.ml.tabular`); reason codes are TreeSHAP contributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from safecity.fraud.ml.tabular import Derived, Rows, TabularModel, fit_booster, to_array
from safecity.platform.errors import InvalidInput

# (derived name, numerator, denominator), in the Sichuan competition's feature names, the
# public schema for per-number aggregates. A ratio is added only when both inputs exist.
RATIOS: tuple[tuple[str, str, str], ...] = (
    ("calls_per_contact", "opposite_count", "opposite_unique"),
    ("calls_per_active_day", "opposite_count", "voc_day_nunique"),
    ("sms_per_active_day", "sms_count", "day_nunique"),
    ("calls_per_sms", "opposite_count", "sms_count"),
    ("outgoing_share", "voccalltype1", "opposite_count"),
    ("imeis_per_active_day", "imeis", "voc_day_nunique"),
    ("peak_hour_share", "voc_hour_mode_count", "opposite_count"),
    ("distinct_sms_share", "sms_nunique", "sms_count"),
    ("call_dur_median_to_mean", "call_dur_median", "call_dur_mean"),
    ("flow_per_arpu", "flow_sum", "arpu_sum"),
)

# (indicator name, inputs that are all missing when the source had no records).
MISSING_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("no_call_records", ("opposite_count",)),
    ("no_sms_records", ("sms_count",)),
    ("arpu_all_missing", ("arpu_mean",)),
)


class NumberModel(TabularModel):
    """LightGBM scam-number model; ``predict_proba`` gives P(scam) per number."""

    kind = "scam-number"


def default_derived(feature_names: Sequence[str], *, missingness: bool = True) -> Derived:
    """Ratios and missing indicators applicable to these input names."""
    have = set(feature_names)
    ratios = tuple(r for r in RATIOS if r[1] in have and r[2] in have and r[0] not in have)
    groups = tuple(g for g in MISSING_GROUPS if set(g[1]) <= have and g[0] not in have)
    return Derived(
        ratios=ratios,
        missing_groups=groups if missingness else (),
        missing_count=missingness and "n_missing" not in have,
    )


def train_number_model(
    x: Rows,
    y: ArrayLike,
    feature_names: Sequence[str],
    *,
    seed: int = 0,
    x_val: Rows | None = None,
    y_val: ArrayLike | None = None,
    params: Mapping[str, Any] | None = None,
    derived: Derived | None = None,
    missingness: bool = True,
    refit_on_all: bool = False,
    target_fpr: float | None = None,
) -> NumberModel:
    """Train on rows of ``feature_names`` with 0/1 labels (1 = scam number).

    Early stopping and the threshold use ``x_val``/``y_val`` (or an internal 20% holdout);
    see :func:`~safecity.fraud.ml.tabular.fit_booster` for ``refit_on_all`` and
    ``target_fpr``. ``derived=Derived()`` switches all derived features off.
    """
    names = [str(n) for n in feature_names]
    if len(set(names)) != len(names):
        raise InvalidInput("feature names must be unique")
    d = default_derived(names, missingness=missingness) if derived is None else derived
    d.check(names)
    xm = d.apply(to_array(x, names, NumberModel.kind), names)
    xv = None if x_val is None else d.apply(to_array(x_val, names, NumberModel.kind), names)
    yv = None if y_val is None else np.asarray(y_val)
    fit = fit_booster(
        xm,
        np.asarray(y),
        seed=seed,
        x_val=xv,
        y_val=yv,
        params=params,
        refit_on_all=refit_on_all,
        target_fpr=target_fpr,
    )
    return NumberModel(booster=fit.booster, input_names=names, threshold=fit.threshold, derived=d)
