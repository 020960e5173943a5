"""Scam-SMS text classifier: TF-IDF word and character n-grams + logistic regression.

Character n-grams (2–5, inside word boundaries) carry the model: they need no tokenizer,
so Chinese text (no spaces between words) needs no segmenter, and they survive the
misspellings scam texts use to dodge keyword filters. (Only English is benchmarked: no
redistributable Chinese scam-SMS set was found; Chinese is covered by unit tests.)
Word 1–2-grams add whole-word cues for spaced languages. Before vectorising,
:func:`normalise` lower-cases and replaces URLs, money amounts, phone numbers and other
digit runs with placeholder tokens, so "call 0800 123 4567" and "call 0871 987 6543"
share features.

Defaults (C=30, balanced classes, char 2–5) were picked by CV on the UCI SMS Spam
Collection; retune C on your own data (``benchmarks/fraud_sms.py`` shows how, by an inner
CV). ``predict_proba`` gives P(scam) per text; ``reason_codes`` gives the n-grams with the
largest coefficient × TF-IDF value in one text, i.e. the words behind its score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.pipeline import FeatureUnion, Pipeline  # type: ignore[import-untyped]

from safecity.fraud.ml.tabular import ReasonCode
from safecity.platform.errors import InvalidInput

_URL = re.compile(
    r"(https?://\S+|www\.\S+|\b[\w.-]+\.(?:com|net|org|cn|co\.uk|biz|info|top|xyz)\b\S*)", re.I
)
_MONEY = re.compile(r"(?:[£$€¥￥]\s?\d[\d,.]*|\d[\d,.]*\s?(?:元|块|万元|rmb|usd|gbp))", re.I)
_PHONE = re.compile(r"\+?\d[\d\- ]{6,}\d")
_DIGITS = re.compile(r"\d+")


def normalise(text: str) -> str:
    """Lower-case; URLs, money, phone numbers and digit runs become placeholder tokens."""
    t = text.lower()
    t = _URL.sub(" zurlz ", t)
    t = _MONEY.sub(" zmoneyz ", t)
    t = _PHONE.sub(" zphonez ", t)
    return _DIGITS.sub(lambda m: f" znum{min(len(m.group()), 6)}z ", t)


@dataclass
class TextModel:
    """A fitted TF-IDF + logistic-regression pipeline with its decision threshold."""

    kind: ClassVar[str] = "scam-text"
    payload_name: ClassVar[str] = "model.joblib"

    pipeline: Any
    threshold: float = 0.5
    settings: dict[str, Any] = field(default_factory=dict)
    _names: NDArray[np.str_] | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def _texts(texts: str | Sequence[str]) -> list[str]:
        items = [texts] if isinstance(texts, str) else list(texts)
        if not all(isinstance(t, str) for t in items):
            raise InvalidInput("scam-text model expects strings")
        return items

    def predict_proba(self, texts: str | Sequence[str]) -> NDArray[np.float64]:
        """P(scam) for each text (a single string gives an array of one)."""
        return np.asarray(self.pipeline.predict_proba(self._texts(texts))[:, 1], dtype=float)

    def predict(self, texts: str | Sequence[str]) -> NDArray[np.bool_]:
        return self.predict_proba(texts) >= self.threshold

    def reason_codes(self, text: str, top: int = 3) -> list[ReasonCode]:
        """The n-grams of ``text`` that raise its score most (coefficient × TF-IDF value)."""
        if not isinstance(text, str):
            raise InvalidInput("reason_codes explains one text at a time")
        feats = self.pipeline.named_steps["features"]
        coef = self.pipeline.named_steps["lr"].coef_[0]
        if self._names is None:
            self._names = np.asarray(feats.get_feature_names_out())
        row = feats.transform([text]).tocsr()
        contrib = row.data * coef[row.indices]
        order = np.argsort(-contrib, kind="stable")[:top]
        return [
            ReasonCode(
                feature=str(self._names[row.indices[i]]).replace("__", ":", 1),
                value=float(row.data[i]),
                contribution=float(contrib[i]),
            )
            for i in order
        ]

    def to_payload(self) -> bytes:
        import io

        import joblib  # type: ignore[import-untyped]

        buf = io.BytesIO()
        joblib.dump(self.pipeline, buf)
        return buf.getvalue()

    def config(self) -> dict[str, Any]:
        return {"settings": dict(self.settings)}

    @classmethod
    def from_payload(cls, payload: bytes, config: dict[str, Any], threshold: float) -> Self:
        """Unpickle a pipeline. Only call on a payload whose sha256 was verified (store.py)."""
        import io

        import joblib

        pipeline = joblib.load(io.BytesIO(payload))
        if not isinstance(pipeline, Pipeline):
            raise InvalidInput("scam-text payload is not a scikit-learn pipeline")
        return cls(
            pipeline=pipeline, threshold=threshold, settings=dict(config.get("settings", {}))
        )


def build_pipeline(
    *,
    c: float = 30.0,
    class_weight: str | None = "balanced",
    char_ngrams: tuple[int, int] = (2, 5),
    word_ngrams: tuple[int, int] = (1, 2),
    seed: int = 0,
) -> Any:
    """The unfitted pipeline: union of word and char_wb TF-IDF, then logistic regression."""
    features = FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(preprocessor=normalise, ngram_range=word_ngrams, sublinear_tf=True),
            ),
            (
                "char",
                TfidfVectorizer(
                    preprocessor=normalise,
                    analyzer="char_wb",
                    ngram_range=char_ngrams,
                    sublinear_tf=True,
                    min_df=1,
                ),
            ),
        ]
    )
    lr = LogisticRegression(C=c, class_weight=class_weight, max_iter=5000, random_state=seed)
    return Pipeline([("features", features), ("lr", lr)])


def train_text_model(
    texts: Sequence[str],
    y: ArrayLike,
    *,
    seed: int = 0,
    c: float = 30.0,
    class_weight: str | None = "balanced",
    char_ngrams: tuple[int, int] = (2, 5),
    threshold: float = 0.5,
) -> TextModel:
    """Fit on texts with 0/1 labels (1 = scam/spam). Works on any language's text."""
    items = TextModel._texts(texts)
    labels = np.asarray(y).astype(int)
    if len(items) != len(labels):
        raise InvalidInput(f"{len(items)} texts but {len(labels)} labels")
    if len(np.unique(labels)) != 2:
        raise InvalidInput("training labels must contain both classes (0 and 1)")
    settings: dict[str, Any] = {
        "c": c,
        "class_weight": class_weight,
        "char_ngrams": list(char_ngrams),
        "word_ngrams": [1, 2],
        "normalise": True,
    }
    pipe = build_pipeline(c=c, class_weight=class_weight, char_ngrams=char_ngrams, seed=seed)
    pipe.fit(items, labels)
    return TextModel(pipeline=pipe, threshold=threshold, settings=settings)
