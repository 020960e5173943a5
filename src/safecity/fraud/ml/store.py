"""Save and load trained fraud models as versioned artifact directories.

An artifact is a directory holding the payload (LightGBM's text dump ``model.lgb.txt`` or
a joblib file ``model.joblib`` for scikit-learn pipelines) and ``metadata.json``: model
kind, SafeCity model-format version, feature names, threshold, library versions, a
description of the training data, evaluation metrics, ``created_at`` and the payload's
sha256. Loading checks the format version, the kind and the hash *before* deserialising
anything, so a corrupted or swapped payload never reaches joblib (which can run code).
Only load artifacts from directories you control: the hash proves integrity, not origin.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb

from safecity.fraud.ml.number_model import NumberModel
from safecity.fraud.ml.site_model import SiteModel
from safecity.fraud.ml.text_model import TextModel
from safecity.platform.errors import InvalidInput, NotFound

FORMAT = "safecity-fraud-model"
FORMAT_VERSION = 1
METADATA = "metadata.json"

Model = NumberModel | SiteModel | TextModel
KINDS: dict[str, type[NumberModel] | type[SiteModel] | type[TextModel]] = {
    NumberModel.kind: NumberModel,
    SiteModel.kind: SiteModel,
    TextModel.kind: TextModel,
}


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("safecity", "lightgbm", "scikit-learn", "numpy", "scipy", "joblib"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def save_model(
    model: Model,
    directory: str | Path,
    *,
    training_data: str,
    metrics: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``directory`` (created; existing artifact files are replaced)."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    payload = model.to_payload()
    config = model.config()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": model.kind,
        "payload": model.payload_name,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "feature_names": config.get("feature_names"),
        "threshold": float(model.threshold),
        "config": config,
        "training_data": training_data,
        "metrics": dict(metrics or {}),
        "library_versions": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **dict(extra or {}),
    }
    (path / model.payload_name).write_bytes(payload)
    (path / METADATA).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", "utf-8")
    return path


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The artifact's metadata, checked for format and version (payload not read)."""
    meta_path = Path(directory) / METADATA
    if not meta_path.is_file():
        raise NotFound(f"no model artifact at {directory} ({METADATA} missing)")
    try:
        meta = json.loads(meta_path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"model metadata {meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InvalidInput(f"{meta_path} is not a SafeCity fraud-model artifact")
    if meta.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"model format version {meta.get('format_version')!r} is not supported "
            f"(this SafeCity reads version {FORMAT_VERSION}); retrain or convert the model"
        )
    return meta


def load_model(directory: str | Path, *, kind: str | None = None) -> Model:
    """Load an artifact; ``kind`` (e.g. ``"scam-number"``) must match when given."""
    meta = read_metadata(directory)
    found = meta.get("kind")
    if found not in KINDS:
        raise InvalidInput(f"unknown model kind {found!r} in {directory}")
    if kind is not None and found != kind:
        raise InvalidInput(f"model at {directory} is a {found!r} model, expected {kind!r}")
    cls = KINDS[found]
    name = meta.get("payload")
    if name != cls.payload_name:
        raise InvalidInput(f"unexpected payload file {name!r} for a {found!r} model")
    payload_path = Path(directory) / cls.payload_name
    if not payload_path.is_file():
        raise NotFound(f"model payload {payload_path} is missing")
    payload = payload_path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != meta.get("payload_sha256"):
        raise InvalidInput(f"model payload {payload_path} does not match its sha256 (corrupted?)")
    try:
        return cls.from_payload(payload, meta.get("config", {}), float(meta["threshold"]))
    except (KeyError, TypeError, ValueError, lgb.basic.LightGBMError) as exc:
        raise InvalidInput(f"model artifact {directory} cannot be read: {exc}") from exc


def number_scorer(directory: str | Path) -> Callable[[Mapping[str, float]], float]:
    """A scam-number artifact as the engine's model signal: features → probability."""
    model = load_model(directory, kind="scam-number")
    if not isinstance(model, NumberModel):
        raise InvalidInput(f"model at {directory} is not a scam-number model")

    def probability(features: Mapping[str, float]) -> float:
        return float(model.predict_proba([dict(features)])[0])

    return probability


def text_scorer(directory: str | Path) -> Callable[[str], tuple[float, list[str]]]:
    """A scam-text artifact as intake's SMS scorer: text → (probability, reason codes)."""
    model = load_model(directory, kind="scam-text")
    if not isinstance(model, TextModel):
        raise InvalidInput(f"model at {directory} is not a scam-text model")

    def score(text: str) -> tuple[float, list[str]]:
        probability = float(model.predict_proba([text])[0])
        reasons = [f"TEXT:{r.feature}"[:40] for r in model.reason_codes(text, top=3)]
        return probability, reasons

    return score
