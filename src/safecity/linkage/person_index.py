"""The person index: train, predict, threshold and cluster person records with Splink.

One code path serves the product and the benchmarks:

    model = train(tables, link_type="dedupe_only")   # EM, u by random sampling
    pred = predict(tables, model)                   # scored candidate pairs
    pred.decision(p)                                # "link" | "review" | "no_link"
    clusters = cluster(pred)                        # unique_id -> cluster id

``tables`` is a list of record lists (one for a dedupe, two for a link); each record is a
mapping with ``unique_id`` and any canonical fields (see ``comparisons.CANONICAL_FIELDS``,
plus ``full_name``). The model is a JSON document with its Splink settings, thresholds
and the versions that made it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from safecity.linkage import comparisons as comp

log = logging.getLogger("safecity.linkage")
MODEL_FORMAT = "safecity.person-index/1"
LinkType = Literal["dedupe_only", "link_only", "link_and_dedupe"]
Decision = Literal["link", "review", "no_link"]
Records = Sequence[Mapping[str, Any]]


class PersonIndexError(ValueError):
    """Bad input or an incompatible model: one clear message."""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match-probability cut-offs: auto-link at or above, review between, no link below."""

    auto_link: float = 0.99
    review: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.review <= self.auto_link < 1.0:
            raise PersonIndexError("thresholds need 0 < review <= auto_link < 1")

    def decide(self, probability: float) -> Decision:
        if probability >= self.auto_link:
            return "link"
        return "review" if probability >= self.review else "no_link"


@dataclass
class Model:
    splink_settings: dict[str, Any]
    link_type: LinkType
    fields: list[str]
    chinese: bool
    thresholds: Thresholds = field(default_factory=Thresholds)
    trained_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MODEL_FORMAT,
                "link_type": self.link_type,
                "fields": self.fields,
                "chinese": self.chinese,
                "thresholds": {
                    "auto_link": self.thresholds.auto_link,
                    "review": self.thresholds.review,
                },
                "trained_at": self.trained_at,
                "versions": self.versions,
                "training": self.training,
                "splink_settings": self.splink_settings,
            },
            ensure_ascii=False,
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Model:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PersonIndexError(f"model file is not JSON: {exc.msg}") from exc
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            fmt = doc.get("format") if isinstance(doc, dict) else None
            raise PersonIndexError(f"model format {fmt!r} is not {MODEL_FORMAT!r}")
        major = str(doc.get("versions", {}).get("splink", "")).split(".")[0]
        if major != _versions()["splink"].split(".")[0]:
            raise PersonIndexError(
                f"model was trained with splink {doc.get('versions', {}).get('splink')}, "
                f"this installation has {_versions()['splink']}: retrain it"
            )
        return cls(
            splink_settings=doc["splink_settings"],
            link_type=doc["link_type"],
            fields=list(doc["fields"]),
            chinese=bool(doc["chinese"]),
            thresholds=Thresholds(**doc["thresholds"]),
            trained_at=doc.get("trained_at", ""),
            versions=doc.get("versions", {}),
            training=doc.get("training", {}),
        )

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Model:
        return cls.from_json(path.read_text(encoding="utf-8"))


def _versions() -> dict[str, str]:
    return {
        "safecity": version("safecity"),
        "splink": version("splink"),
        "duckdb": version("duckdb"),
        "model_format": MODEL_FORMAT,
    }


# ------------------------------------------------------------------------------ input


_COLUMNS = ("unique_id", *comp.CANONICAL_FIELDS, *comp.DERIVED_FIELDS)


@dataclass
class Prepared:
    tables: list[pa.Table]
    present: list[str]  # canonical/derived columns holding data somewhere
    chinese: bool
    id_errors: dict[str, str]  # unique_id -> why its ID number was rejected


def prepare(tables: Sequence[Records], *, retain: Sequence[str] = ()) -> Prepared:
    """Validate and normalise records into Arrow tables of the canonical shape."""
    if not tables:
        raise PersonIndexError("no input tables")
    out: list[pa.Table] = []
    present: set[str] = set()
    chinese = False
    id_errors: dict[str, str] = {}
    for records in tables:
        if not records:
            raise PersonIndexError("an input table is empty")
        seen: set[str] = set()
        rows = []
        for raw in records:
            try:
                rec = comp.prepare_record(raw)
            except ValueError as exc:
                raise PersonIndexError(str(exc)) from exc
            uid = rec["unique_id"]
            if uid in seen:
                raise PersonIndexError(f"duplicate unique_id {uid!r}")
            seen.add(uid)
            if rec["id_error"]:
                id_errors[uid] = rec["id_error"]
            for extra in retain:
                rec[extra] = None if raw.get(extra) is None else str(raw[extra])
            chinese = chinese or comp.has_han(rec["surname"]) or comp.has_han(rec["given_name"])
            present.update(k for k in _COLUMNS[1:] if rec.get(k) is not None)
            rows.append(rec)
        cols = [*_COLUMNS, *retain]
        schema = pa.schema([(c, pa.string()) for c in cols])
        out.append(pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows], schema))
    return Prepared(out, sorted(present), chinese, id_errors)


# --------------------------------------------------------------------------- settings


def default_settings(
    present: Sequence[str], *, chinese: bool, link_type: LinkType
) -> dict[str, Any]:
    fields = set(present)
    return {
        "link_type": link_type,
        "unique_id_column_name": "unique_id",
        "comparisons": comp.build_comparisons(fields, chinese=chinese),
        "blocking_rules_to_generate_predictions": comp.build_blocking_rules(fields),
        "retain_matching_columns": True,
        "retain_intermediate_calculation_columns": False,
        "probability_two_random_records_match": 1e-4,
    }


def _linker(prepared: Prepared, settings: dict[str, Any]) -> Any:
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI()
    frames = [
        db_api.register(table, dataset_display_name=f"input_{i}")
        for i, table in enumerate(prepared.tables)
    ]
    return Linker(frames if len(frames) > 1 else frames[0], settings, log_level=logging.WARNING)


# ---------------------------------------------------------------------------- training


def train(
    tables: Sequence[Records],
    *,
    link_type: LinkType = "dedupe_only",
    thresholds: Thresholds | None = None,
    u_max_pairs: float = 2e6,
    seed: int = 42,
    settings: dict[str, Any] | None = None,
) -> Model:
    """EM-train a model on unlabelled records (u by random sampling, m by EM)."""
    prepared = prepare(tables)
    if link_type == "dedupe_only" and len(prepared.tables) != 1:
        raise PersonIndexError("a dedupe takes exactly one table")
    if link_type != "dedupe_only" and len(prepared.tables) < 2:
        raise PersonIndexError("a link takes two or more tables")
    cfg = settings or default_settings(
        prepared.present, chinese=prepared.chinese, link_type=link_type
    )
    if not cfg["comparisons"]:
        raise PersonIndexError("no comparable fields in the records")
    linker = _linker(prepared, cfg)
    have = set(prepared.present)
    deterministic = [
        rule
        for cols, rule in (
            (
                ("given_name", "surname", "dob"),
                'l."given_name" = r."given_name" AND l."surname" = r."surname" '
                'AND l."dob" = r."dob"',
            ),
            (("id_number",), 'l."id_number" = r."id_number"'),
        )
        if set(cols) <= have
    ] or cfg["blocking_rules_to_generate_predictions"][:1]
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=0.7)
    linker.training.estimate_u_using_random_sampling(max_pairs=u_max_pairs, seed=seed)
    em_rules = []
    if "dob" in have:
        em_rules.append('l."dob" = r."dob"')
    if {"given_name", "surname"} <= have:
        em_rules.append('l."given_name" = r."given_name" AND l."surname" = r."surname"')
    if len(em_rules) < 2:
        em_rules = cfg["blocking_rules_to_generate_predictions"][:2]
    em_skipped: list[dict[str, str]] = []
    for rule in em_rules:
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(
                rule, estimate_without_term_frequencies=True
            )
        except ValueError as exc:
            # On clean data EM can drive a level's m to exactly 0 (no true match ever lands
            # there) and Splink refuses the value mid-session; the session works on a copy,
            # so the model keeps the other rounds' estimates. Recorded, not hidden.
            if "below the minimum allowed" not in str(exc):
                raise
            em_skipped.append({"rule": rule, "reason": str(exc).split(". ")[0]})
            log.warning("EM round on %s skipped: %s", rule, exc)
    if len(em_skipped) == len(em_rules):
        raise PersonIndexError(
            "every EM round failed (m probabilities underflow to 0): "
            + "; ".join(x["reason"] for x in em_skipped)
        )
    splink_settings = _floor_probabilities(linker.misc.save_model_to_json())
    prior = _calibrate_prior(linker, prepared, link_type, splink_settings)
    splink_settings["probability_two_random_records_match"] = prior["calibrated"]
    return Model(
        splink_settings=splink_settings,
        link_type=link_type,
        fields=prepared.present,
        chinese=prepared.chinese,
        thresholds=thresholds or Thresholds(),
        trained_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        versions=_versions(),
        training={
            "em_blocking_rules": em_rules,
            "em_skipped": em_skipped,
            "deterministic_rules": deterministic,
            "prior": prior,
        },
    )


PROBABILITY_FLOOR = 1e-6


def _floor_probabilities(settings: dict[str, Any]) -> dict[str, Any]:
    """Lift m and u probabilities of exactly 0 to :data:`PROBABILITY_FLOOR`.

    On clean data EM can drive a level's m to 0 (no true match ever lands there: e.g. the
    "else" level of a date of birth), which Splink then refuses to load; a level never seen
    is not proof that it cannot happen. The floor keeps its weight finite and very low."""
    for comparison in settings.get("comparisons", []):
        for level in comparison.get("comparison_levels", []):
            for key in ("m_probability", "u_probability"):
                value = level.get(key)
                if isinstance(value, (int, float)) and value < PROBABILITY_FLOOR:
                    level[key] = PROBABILITY_FLOOR
    return settings


def _comparison_count(prepared: Prepared, link_type: LinkType) -> int:
    sizes = [int(t.num_rows) for t in prepared.tables]
    if link_type == "link_only":
        return sum(a * b for i, a in enumerate(sizes) for b in sizes[i + 1 :])
    n = sum(sizes)
    return n * (n - 1) // 2


def _calibrate_prior(
    linker: Any, prepared: Prepared, link_type: LinkType, settings: dict[str, Any]
) -> dict[str, Any]:
    """Re-estimate the prior match probability from the trained model, without labels.

    The deterministic-rule estimate assumes those rules find 70% of matches, which is far
    off on messy data (too low a prior makes every probability too low). Here the prior
    is the fixed point of ``prior = sum of match probabilities of the candidate pairs /
    all possible pairs`` (the EM update of the prior, taking pairs outside the blocking
    as non-matches), computed from the scored training pairs.
    """
    start = float(settings["probability_two_random_records_match"])
    total = _comparison_count(prepared, link_type)
    frame = linker.inference.predict()
    con = linker._db_api.duckdb_con
    base = math.log2(start / (1 - start))
    prior, iterations = start, 0
    try:
        for iterations in range(1, 101):  # noqa: B007
            logit = math.log2(prior / (1 - prior))
            rows = con.execute(
                "SELECT sum(1.0 / (1.0 + pow(2.0, -(match_weight - ? + ?)))) "  # noqa: S608
                f"FROM {frame.physical_name}",
                [base, logit],
            ).fetchall()
            expected = float(rows[0][0] or 0.0) if rows else 0.0
            new = min(max(expected / total, 1e-9), 0.5) if total else start
            converged = abs(new - prior) <= 1e-3 * prior
            prior = new
            if converged:
                break
    finally:
        frame.drop_table_from_database_and_remove_from_cache()
    return {"deterministic_estimate": start, "calibrated": prior, "iterations": iterations}


# -------------------------------------------------------------------------- prediction


@dataclass
class Prediction:
    model: Model
    linker: Any
    frame: Any  # SplinkDataFrame of scored pairs
    id_errors: dict[str, str]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run SQL where ``{pairs}`` is the scored-pair table."""
        con = self.linker._db_api.duckdb_con
        rows: list[tuple[Any, ...]] = con.execute(
            sql.format(pairs=self.frame.physical_name)
        ).fetchall()
        return rows

    def pairs(
        self, *, min_probability: float | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        floor = self.model.thresholds.review if min_probability is None else min_probability
        sql = (
            "SELECT unique_id_l, unique_id_r, match_weight, match_probability FROM {pairs} "  # noqa: S608
            f"WHERE match_probability >= {float(floor)} ORDER BY match_probability DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            {
                "unique_id_l": a,
                "unique_id_r": b,
                "match_weight": float(w),
                "match_probability": float(p),
                "decision": self.model.thresholds.decide(float(p)),
            }
            for a, b, w, p in self.query(sql)
        ]

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM {pairs}")[0][0])


def predict(tables: Sequence[Records], model: Model, *, retain: Sequence[str] = ()) -> Prediction:
    """Score all candidate pairs from the model's blocking rules."""
    prepared = prepare(tables, retain=retain)
    settings = dict(model.splink_settings)
    settings["additional_columns_to_retain"] = list(retain)
    settings.pop("linker_uid", None)
    linker = _linker(prepared, settings)
    frame = linker.inference.predict()
    return Prediction(model=model, linker=linker, frame=frame, id_errors=prepared.id_errors)


def expected_f1_threshold(prediction: Prediction) -> float:
    """The match probability that maximises the F1 the model expects of itself.

    Label-free: each scored pair counts as ``match_probability`` of a true pair, so the
    expected true positives above a cut are the sum of the probabilities above it and
    the expected number of true pairs is the sum over all candidate pairs.
    """
    row = prediction.query(
        "WITH s AS (SELECT match_probability AS p, "
        "sum(match_probability) OVER (ORDER BY match_probability DESC) AS tp, "
        "count(*) OVER (ORDER BY match_probability DESC) AS k FROM {pairs}), "
        "t AS (SELECT sum(match_probability) AS total FROM {pairs}) "
        "SELECT p FROM s, t WHERE t.total > 0 ORDER BY 2 * tp / (k + t.total) DESC, p DESC "
        "LIMIT 1"
    )
    return float(row[0][0]) if row else prediction.model.thresholds.review


def cluster(prediction: Prediction, *, threshold: float | None = None) -> dict[str, str]:
    """Connected components over pairs at or above the auto-link threshold."""
    cut = prediction.model.thresholds.auto_link if threshold is None else threshold
    frame = prediction.linker.clustering.cluster_pairwise_predictions_at_threshold(
        prediction.frame, threshold_match_probability=cut
    )
    rows = frame.as_record_list()
    key = "source_dataset" if prediction.model.link_type != "dedupe_only" else None
    out: dict[str, str] = {}
    for row in rows:
        uid = str(row["unique_id"]) if key is None else f"{row[key]}|{row['unique_id']}"
        out[uid] = str(row["cluster_id"])
    return out


# -------------------------------------------------------------------------- evaluation


def true_pair_count(tables: Sequence[Records], link_type: LinkType, truth: str = "truth") -> int:
    if link_type == "dedupe_only":
        counts = Counter(r[truth] for r in tables[0])
        return sum(n * (n - 1) // 2 for n in counts.values())
    per = [Counter(r[truth] for r in t) for t in tables]
    return sum(per[0][k] * per[1].get(k, 0) for k in per[0])


def _pair_source(tables: Sequence[Records], link_type: LinkType, truth: str) -> tuple[Any, str]:
    import duckdb

    prepared = prepare(tables, retain=[truth])
    con = duckdb.connect()
    for i, table in enumerate(prepared.tables):
        con.register(f"t{i}", table)
    if link_type == "dedupe_only":
        return con, "t0 l JOIN t0 r ON l.unique_id < r.unique_id AND"
    return con, "t0 l JOIN t1 r ON"


def blocking_recall_each(
    tables: Sequence[Records], rules: Sequence[str], link_type: LinkType, truth: str = "truth"
) -> list[dict[str, Any]]:
    """Candidate pairs and recall of each blocking rule on its own (labelled data)."""
    con, frm = _pair_source(tables, link_type, truth)
    total = true_pair_count(tables, link_type, truth)
    out: list[dict[str, Any]] = []
    for rule in rules:
        rows = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE l.{truth} = r.{truth}) "  # noqa: S608
            f"FROM {frm} ({rule})"
        ).fetchall()
        n, found = rows[0] if rows else (0, 0)
        out.append({"rule": rule, "pairs": int(n), "recall": int(found) / total if total else 1.0})
    con.close()
    return out


def blocking_recall(
    tables: Sequence[Records], rules: Sequence[str], link_type: LinkType, truth: str = "truth"
) -> list[dict[str, Any]]:
    """Cumulative candidate pairs and true pairs found per blocking rule (labelled data)."""
    import duckdb

    prepared = prepare(tables, retain=[truth])
    con = duckdb.connect()
    for i, table in enumerate(prepared.tables):
        con.register(f"t{i}", table)
    if link_type == "dedupe_only":
        join = "l.unique_id < r.unique_id"
        frm = "t0 l JOIN t0 r"
    else:
        frm = "t0 l JOIN t1 r"
        join = "TRUE"
    total = true_pair_count(tables, link_type, truth)
    out: list[dict[str, Any]] = []
    previous: list[str] = []
    pairs_cum = found_cum = 0
    for rule in rules:
        excl = " AND ".join(f"NOT coalesce(({p}), FALSE)" for p in previous) or "TRUE"
        n, found = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE l.{truth} = r.{truth}) "  # noqa: S608
            f"FROM {frm} ON ({rule}) AND {join} WHERE {excl}"
        ).fetchone() or (0, 0)
        pairs_cum += int(n)
        found_cum += int(found)
        previous.append(rule)
        out.append(
            {
                "rule": rule,
                "pairs": int(n),
                "cumulative_pairs": pairs_cum,
                "cumulative_recall": found_cum / total if total else 1.0,
            }
        )
    con.close()
    return out
