"""Model artifacts: round trip for each kind and the faults loading must refuse."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from safecity.fraud.ml import store
from safecity.fraud.ml.number_model import NumberModel, train_number_model
from safecity.fraud.ml.site_model import SiteModel, train_site_model
from safecity.fraud.ml.text_model import TextModel, train_text_model
from safecity.platform.errors import InvalidInput, NotFound

NAMES = ["opposite_count", "opposite_unique", "sms_count", "arpu_mean"]


def number_model() -> tuple[NumberModel, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.4).astype(int)
    x = np.column_stack(
        [rng.normal(100 + 100 * y, 30), rng.normal(50 + 80 * y, 20), rng.poisson(10, 300),
         np.where(rng.random(300) < 0.1, np.nan, rng.normal(50, 5, 300))]
    )  # fmt: skip
    return train_number_model(x, y, NAMES, seed=1), x


def test_number_model_round_trip(tmp_path: Path) -> None:
    model, x = number_model()
    path = store.save_model(
        model, tmp_path / "m", training_data="synthetic 300 rows", metrics={"roc_auc": 0.9}
    )
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["kind"] == "scam-number"
    assert meta["format_version"] == store.FORMAT_VERSION
    assert meta["feature_names"] == model.feature_names
    assert meta["metrics"] == {"roc_auc": 0.9}
    assert meta["threshold"] == model.threshold
    assert len(meta["payload_sha256"]) == 64
    assert "lightgbm" in meta["library_versions"]
    assert meta["created_at"].endswith("+00:00")
    loaded = store.load_model(path, kind="scam-number")
    assert isinstance(loaded, NumberModel)
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.threshold == model.threshold
    assert loaded.feature_names == model.feature_names
    assert loaded.reason_codes(x[0]) == model.reason_codes(x[0])


def test_site_and_text_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.choice([-1.0, 0.0, 1.0], size=(200, 3))
    y = (x[:, 0] < 0).astype(int)
    site = train_site_model(x, y, ["a", "b", "c"], seed=0)
    loaded = store.load_model(store.save_model(site, tmp_path / "s", training_data="synth"))
    assert isinstance(loaded, SiteModel)
    assert np.array_equal(loaded.predict_proba(x), site.predict_proba(x))
    text = train_text_model(["win cash now", "free prize call", "see you soon", "lunch?"],
                            [1, 1, 0, 0])  # fmt: skip
    loaded_t = store.load_model(store.save_model(text, tmp_path / "t", training_data="synth"))
    assert isinstance(loaded_t, TextModel)
    assert np.allclose(loaded_t.predict_proba(["free cash"]), text.predict_proba(["free cash"]))
    assert loaded_t.reason_codes("free cash") == text.reason_codes("free cash")


def _edit_meta(path: Path, **changes: object) -> None:
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(changes)
    (path / "metadata.json").write_text(json.dumps(meta))


def test_faults_are_refused_with_one_line_messages(tmp_path: Path) -> None:
    model, _ = number_model()
    path = store.save_model(model, tmp_path / "m", training_data="synth")

    with pytest.raises(InvalidInput, match="expected 'scam-text'"):
        store.load_model(path, kind="scam-text")

    _edit_meta(path, format_version=999)
    with pytest.raises(InvalidInput, match="format version 999 is not supported"):
        store.load_model(path)
    _edit_meta(path, format_version=store.FORMAT_VERSION)

    _edit_meta(path, kind="crystal-ball")
    with pytest.raises(InvalidInput, match="unknown model kind"):
        store.load_model(path)
    _edit_meta(path, kind="scam-number")

    payload = path / NumberModel.payload_name
    payload.write_bytes(payload.read_bytes().replace(b"threshold=", b"threshold=1", 1))
    with pytest.raises(InvalidInput, match="sha256") as err:
        store.load_model(path)
    assert "\n" not in str(err.value)


def test_missing_and_foreign_artifacts(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no model artifact"):
        store.load_model(tmp_path / "nothing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        store.load_model(tmp_path / "junk")
    (tmp_path / "junk" / "metadata.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InvalidInput, match="not a SafeCity fraud-model artifact"):
        store.load_model(tmp_path / "junk")
    model, _ = number_model()
    path = store.save_model(model, tmp_path / "m", training_data="synth")
    (path / NumberModel.payload_name).unlink()
    with pytest.raises(NotFound, match="payload"):
        store.load_model(path)


def test_payload_with_matching_hash_but_garbage_is_refused(tmp_path: Path) -> None:
    model, _ = number_model()
    path = store.save_model(model, tmp_path / "m", training_data="synth")
    garbage = b"not a lightgbm model"
    (path / NumberModel.payload_name).write_bytes(garbage)
    _edit_meta(path, payload_sha256=hashlib.sha256(garbage).hexdigest())
    with pytest.raises(InvalidInput, match="cannot be read"):
        store.load_model(path)


def test_artifacts_plug_into_the_engine_and_intake(tmp_path: Path) -> None:
    import numpy as np

    from safecity.fraud.ml.number_model import train_number_model
    from safecity.fraud.ml.store import number_scorer, save_model, text_scorer
    from safecity.fraud.ml.text_model import train_text_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 2))
    y = (x[:, 0] > 0.3).astype(int)
    save_model(
        train_number_model(x, y, ["calls_per_hour", "reports"]), tmp_path / "n", training_data="t"
    )
    probability = number_scorer(tmp_path / "n")({"calls_per_hour": 3.0, "reports": 0.0})
    assert 0.5 < probability <= 1.0
    texts = ["转入安全账户", "刷单返利", "晚饭吃什么", "明天开会"] * 10
    save_model(train_text_model(texts, [1, 1, 0, 0] * 10), tmp_path / "t", training_data="t")
    value, reasons = text_scorer(tmp_path / "t")("请立即转入安全账户")
    assert value > 0.5
    assert reasons
    assert all(r.startswith("TEXT:") for r in reasons)
    with pytest.raises(InvalidInput, match="scam-text"):
        text_scorer(tmp_path / "n")
