"""Phishing-site classifier on page and domain indicators.

The inputs are the discretised indicators of the UCI Phishing Websites set (Mohammad,
Thabtah & McCluskey): each is -1 (phishing-like), 0 (suspicious) or 1 (legitimate-like),
computed from the URL, the page's HTML/JavaScript and domain reputation. A deployment that
computes a subset or other indicators declares its own feature-name list; nothing here
fixes the list. The learner is LightGBM (see :mod:`safecity.fraud.ml.tabular`);
``predict_proba`` gives P(phishing) and reason codes name the indicators behind it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from safecity.fraud.ml.tabular import Rows, TabularModel, fit_booster, to_array
from safecity.platform.errors import InvalidInput

UCI_INDICATORS: tuple[str, ...] = (
    "having_IP_Address",
    "URL_Length",
    "Shortining_Service",
    "having_At_Symbol",
    "double_slash_redirecting",
    "Prefix_Suffix",
    "having_Sub_Domain",
    "SSLfinal_State",
    "Domain_registeration_length",
    "Favicon",
    "port",
    "HTTPS_token",
    "Request_URL",
    "URL_of_Anchor",
    "Links_in_tags",
    "SFH",
    "Submitting_to_email",
    "Abnormal_URL",
    "Redirect",
    "on_mouseover",
    "RightClick",
    "popUpWidnow",
    "Iframe",
    "age_of_domain",
    "DNSRecord",
    "web_traffic",
    "Page_Rank",
    "Google_Index",
    "Links_pointing_to_page",
    "Statistical_report",
)

# Deep trees, small leaves: the indicators are coarse and many sites share a vector. Picked
# from four settings compared by 10-fold CV on the UCI set (benchmarks/fraud_phishing.py).
SITE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 3,
    "feature_fraction": 0.8,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
}


class SiteModel(TabularModel):
    """LightGBM phishing-site model; ``predict_proba`` gives P(phishing) per site."""

    kind = "phishing-site"


def train_site_model(
    x: Rows,
    y: ArrayLike,
    feature_names: Sequence[str] = UCI_INDICATORS,
    *,
    seed: int = 0,
    x_val: Rows | None = None,
    y_val: ArrayLike | None = None,
    params: Mapping[str, Any] | None = None,
    refit_on_all: bool = True,
    target_fpr: float | None = None,
) -> SiteModel:
    """Train on indicator rows with 0/1 labels (1 = phishing).

    Without validation data a stratified 20% is held out for early stopping and the
    threshold, then (``refit_on_all``) the model is retrained on everything.
    """
    names = [str(n) for n in feature_names]
    if len(set(names)) != len(names):
        raise InvalidInput("feature names must be unique")
    xm = to_array(x, names, SiteModel.kind)
    xv = None if x_val is None else to_array(x_val, names, SiteModel.kind)
    fit = fit_booster(
        xm,
        np.asarray(y),
        seed=seed,
        x_val=xv,
        y_val=None if y_val is None else np.asarray(y_val),
        params={**SITE_PARAMS, **(params or {})},
        refit_on_all=refit_on_all,
        target_fpr=target_fpr,
    )
    return SiteModel(booster=fit.booster, input_names=names, threshold=fit.threshold)
