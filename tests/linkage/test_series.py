"""Crime-series linkage: features on hand-made pairs, ranking of a planted series,
explanations, model files and bad input. All data is generated here."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.linkage import series as ser
from safecity.linkage import series_features as sf
from safecity.platform.errors import InvalidInput, NotFound

SPEC = sf.FeatureSpec(("entry", "tool"))
DAY0 = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)  # a Monday


def rec(
    cid: str,
    x: float,
    y: float,
    start: dt.datetime,
    end: dt.datetime | None = None,
    **mo: str | None,
) -> dict[str, Any]:
    return {"id": cid, "x": x, "y": y, "time_from": start, "time_to": end, "mo": mo}


def features(a: dict[str, Any], b: dict[str, Any], spec: sf.FeatureSpec = SPEC) -> dict[str, float]:
    crimes = sf.parse_crimes([a, b], spec)
    table = sf.CrimeTable(crimes, spec, sf.category_rarity(crimes, spec))
    row = sf.pair_features(table, np.array([0]), np.array([1]))[0]
    return dict(zip(spec.names(), row.tolist(), strict=True))


def at(day: int, hour: float) -> dt.datetime:
    return DAY0 + dt.timedelta(days=day, hours=hour)


def test_distance_and_midpoint_gap() -> None:
    f = features(rec("a", 0, 0, at(0, 10)), rec("b", 300, 400, at(2, 10)))
    assert f["log_distance"] == pytest.approx(math.log1p(500 / 100))
    assert f["log_gap"] == pytest.approx(math.log1p(2.0))


def test_overlapping_windows() -> None:
    inside = features(rec("a", 0, 0, at(0, 10), at(0, 14)), rec("b", 0, 0, at(0, 12), at(0, 13)))
    assert inside["window_overlap"] == pytest.approx(1.0)
    assert inside["log_gap"] == pytest.approx(math.log1p(0.5 / 24))  # midpoints 12:00, 12:30
    part = features(rec("a", 0, 0, at(0, 10), at(0, 14)), rec("b", 0, 0, at(0, 13), at(0, 17)))
    assert part["window_overlap"] == pytest.approx(0.25)  # 1 h of the shorter 4 h window
    apart = features(rec("a", 0, 0, at(0, 10), at(0, 11)), rec("b", 0, 0, at(1, 10), at(1, 11)))
    assert apart["window_overlap"] == 0.0


def test_time_of_day_is_circular_across_midnight() -> None:
    near = features(rec("a", 0, 0, at(0, 23.75)), rec("b", 0, 0, at(5, 0.25)))
    assert near["tod_diff"] == pytest.approx(0.5)
    far = features(rec("a", 0, 0, at(0, 23.75)), rec("b", 0, 0, at(5, 11.75)))
    assert far["tod_diff"] == pytest.approx(12.0)
    # an overnight window 22:00-02:00 against an instant at 01:00 (aoristic)
    night = features(rec("a", 0, 0, at(0, 22), at(1, 2)), rec("b", 0, 0, at(9, 1)))
    assert night["tod_similarity"] == pytest.approx(0.125)  # 30 min of 4 h in 01:00's bin
    assert night["tod_diff"] < 2.0


def test_day_of_week_is_circular() -> None:
    sunday_monday = features(rec("a", 0, 0, at(6, 12)), rec("b", 0, 0, at(7, 12)))
    assert sunday_monday["dow_diff"] == pytest.approx(1.0)
    same_day = features(rec("a", 0, 0, at(2, 9)), rec("b", 0, 0, at(16, 20)))
    assert same_day["dow_diff"] == 0.0
    assert same_day["dow_similarity"] == pytest.approx(1.0)


def test_mo_match_mismatch_and_missing() -> None:
    f = features(
        rec("a", 0, 0, at(0, 1), entry="window", tool="bar"),
        rec("b", 0, 0, at(0, 1), entry="window", tool=None),
    )
    assert f["mo_entry"] == 1.0
    assert f["mo_entry_rarity"] > 0
    assert f["mo_tool"] == 0.0  # missing is not a mismatch
    g = features(rec("a", 0, 0, at(0, 1), entry="door"), rec("b", 0, 0, at(0, 1), entry="window"))
    assert g["mo_entry"] == -1.0
    assert g["mo_entry_rarity"] == 0.0


def test_property_and_target_and_latlng() -> None:
    spec = sf.FeatureSpec(("entry",), use_property=True, use_target=True)
    a = {
        "id": "a",
        "lat": 31.23,
        "lng": 121.47,
        "time_from": at(0, 1),
        "mo": {},
        "property": ["phone", "cash"],
        "target": "shop",
    }
    b = {
        "id": "b",
        "lat": 31.24,
        "lng": 121.47,
        "time_from": at(0, 2),
        "mo": {},
        "property": ["phone"],
        "target": "shop",
    }
    f = features(a, b, spec)
    assert f["property_jaccard"] == pytest.approx(0.0)  # 2*1/2 - 1
    assert f["target_match"] == 1.0
    assert math.expm1(f["log_distance"]) * 100 == pytest.approx(1112, rel=0.01)  # 0.01 deg


@settings(max_examples=60, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=24 * 400),
    length=st.floats(min_value=0, max_value=24 * 10),
)
def test_aoristic_weights_are_a_distribution(start: float, length: float) -> None:
    t0, t1 = np.array([start]), np.array([start + length])
    for period, bins in ((24.0, 48), (168.0, 7)):
        w = sf._aoristic(t0, t1, period, bins)
        assert w.min() >= -1e-12
        assert w.sum() == pytest.approx(1.0)


def planted(
    seed: int, n_series: int = 6, per_series: int = 5, noise: int = 70
) -> tuple[list[dict[str, Any]], dict[str, set[str]]]:
    """Random burglaries in a 20 km square over a year, plus tight same-MO series."""
    rnd = random.Random(seed)
    entries, tools = list("ABCDEFGH"), list("pqrstu")
    records, offenders = [], {}
    for k in range(noise):
        cid = f"s{seed}-n{k}"
        records.append(
            rec(
                cid,
                rnd.uniform(0, 20000),
                rnd.uniform(0, 20000),
                at(rnd.randrange(365), rnd.uniform(0, 24)),
                entry=rnd.choice(entries),
                tool=rnd.choice(tools),
            )
        )
        offenders[cid] = {f"o{seed}-n{k}"}
    for s in range(n_series):
        cx, cy, day = rnd.uniform(0, 20000), rnd.uniform(0, 20000), rnd.randrange(330)
        hour, entry, tool = rnd.uniform(0, 24), rnd.choice(entries), rnd.choice(tools)
        for m in range(per_series):
            cid = f"s{seed}-S{s}-{m}"
            start = at(day + rnd.randrange(25), (hour + rnd.uniform(-1, 1)) % 24)
            records.append(
                rec(
                    cid,
                    cx + rnd.gauss(0, 250),
                    cy + rnd.gauss(0, 250),
                    start,
                    start + dt.timedelta(hours=rnd.uniform(0, 2)),
                    entry=entry,
                    tool=tool,
                )
            )
            offenders[cid] = {f"o{seed}-S{s}"}
    return records, offenders


@pytest.fixture(scope="module")
def trained() -> dict[str, ser.SeriesModel]:
    records, offenders = planted(1)
    return {k: ser.train(records, offenders, SPEC, kind=k) for k in ("logistic", "gbm")}


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_planted_series_ranks_above_unrelated(
    trained: dict[str, ser.SeriesModel], kind: str
) -> None:
    records, _ = planted(2)  # crimes the model has never seen
    index = ser.SeriesIndex(trained[kind], records)
    for s in range(3):
        top = index.rank_for(f"s2-S{s}-0", k=4)
        mates = [r for r in top if r.crime_id.startswith(f"s2-S{s}-")]
        assert len(mates) >= 3, [r.crime_id for r in top]
        assert top[0].score > 0.5
    assert top == sorted(top, key=lambda r: -r.score)
    probs = index.score_pairs([("s2-S0-0", "s2-S0-1"), ("s2-S0-0", "s2-n0")])
    assert probs[0] > probs[1]


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_contributions_sum_to_the_logit(trained: dict[str, ser.SeriesModel], kind: str) -> None:
    model = trained[kind]
    index = ser.SeriesIndex(model, planted(3)[0])
    for r in index.rank_for("s3-S1-2", k=5):
        assert set(r.contributions) == set(model.feature_names)
        assert sum(r.contributions.values()) + r.baseline == pytest.approx(r.logit, abs=1e-3)
        assert r.score == pytest.approx(1 / (1 + math.exp(-r.logit)))
        assert set(r.facts) == {"distance_m", "gap_days", "mo"}


def test_lr_contribution_is_coefficient_times_standardised_value(
    trained: dict[str, ser.SeriesModel],
) -> None:
    model = trained["logistic"]
    x = np.ones((1, len(model.feature_names)))
    logit, contrib, _ = model.scorer.logit_and_contrib(x)
    sc = model.scorer
    expect = (1.0 - np.array(sc.mean)) / np.array(sc.scale) * np.array(sc.coef)
    assert contrib[0] == pytest.approx(expect)
    assert logit[0] == pytest.approx(expect.sum() + sc.intercept)


def test_auto_picks_the_better_inner_auc() -> None:
    records, offenders = planted(4, noise=40)
    model = ser.train(records, offenders, SPEC)
    assert set(model.alternatives) == {"logistic", "gbm"}
    best = max(model.alternatives, key=lambda k: model.alternatives[k])
    assert model.scorer.kind == best


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_save_load_round_trip(
    trained: dict[str, ser.SeriesModel], kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "series.json"
    trained[kind].save(path)
    loaded = ser.SeriesModel.load(path)
    records = planted(5)[0]
    pairs = [("s5-S0-0", "s5-S0-1"), ("s5-S2-3", "s5-n7"), ("s5-n1", "s5-n2")]
    before = ser.SeriesIndex(trained[kind], records).score_pairs(pairs)
    after = ser.SeriesIndex(loaded, records).score_pairs(pairs)
    assert after == pytest.approx(before, abs=1e-9)
    assert loaded.scorer.kind == kind


def test_model_file_from_another_version_is_refused(
    trained: dict[str, ser.SeriesModel], tmp_path: Path
) -> None:
    path = tmp_path / "series.json"
    trained["logistic"].save(path)
    doc = json.loads(path.read_text())
    doc["version"] = ser.MODEL_VERSION + 1
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="version"):
        ser.SeriesModel.load(path)
    path.write_text(json.dumps({"format": "safecity.person-index/1"}))
    with pytest.raises(InvalidInput, match="not a crime-series model"):
        ser.SeriesModel.load(path)
    path.write_text("{broken")
    with pytest.raises(InvalidInput, match="cannot read"):
        ser.SeriesModel.load(path)


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_damaged_model_file_is_refused(
    trained: dict[str, ser.SeriesModel], kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "series.json"
    trained[kind].save(path)
    doc = json.loads(path.read_text())
    if kind == "gbm":
        doc["scorer"]["booster"] = "not a booster"
    else:
        del doc["scorer"]["params"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="damaged"):
        ser.SeriesModel.load(path)


def test_window_ending_before_it_starts_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="ends before it starts"):
        sf.parse_crimes([rec("a", 0, 0, at(1, 10), at(1, 9))], SPEC)


def test_unknown_mo_field_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="unknown MO field colour"):
        sf.parse_crimes([rec("a", 0, 0, at(1, 10), colour="red")], SPEC)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "a", "x": 0, "y": 0, "time_from": "yesterday", "mo": {}}, "not an ISO time"),
        ({"id": "a", "x": "far", "y": 0, "time_from": at(0, 1), "mo": {}}, "x is missing"),
        ({"id": "a", "y": 0, "time_from": at(0, 1), "mo": {}}, "x is missing"),
        ({"id": "a", "lat": 95, "lng": 0, "time_from": at(0, 1), "mo": {}}, "out of range"),
        ({"id": "a", "x": 0, "y": 0, "mo": {}}, "time_from is missing"),
        ({"id": "", "x": 0, "y": 0, "time_from": at(0, 1)}, "no id"),
        ({"id": "a", "x": 0, "y": 0, "time_from": at(0, 1), "colour": 1}, "unknown keys"),
    ],
)
def test_bad_records_are_invalid(record: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        sf.parse_crimes([record], SPEC)


def test_duplicate_ids_and_unknown_crime(trained: dict[str, ser.SeriesModel]) -> None:
    with pytest.raises(InvalidInput, match="duplicate crime id a"):
        sf.parse_crimes([rec("a", 0, 0, at(0, 1)), rec("a", 1, 1, at(0, 2))], SPEC)
    index = ser.SeriesIndex(trained["logistic"], planted(6)[0])
    with pytest.raises(NotFound):
        index.rank_for("nope")
    with pytest.raises(InvalidInput, match="k must be"):
        index.rank_for("s6-n0", k=0)


def test_training_without_links_is_invalid() -> None:
    records, _ = planted(7, n_series=0, noise=20)
    offenders = {r["id"]: {f"o-{r['id']}"} for r in records}
    with pytest.raises(InvalidInput, match="linked and unlinked"):
        ser.train(records, offenders, SPEC, kind="logistic")


def test_cli_series_rank_trains_saves_and_ranks(tmp_path: Path) -> None:
    import csv

    from typer.testing import CliRunner

    from safecity.linkage.cli import app

    records, offenders = planted(8, noise=40)
    crimes_csv, off_csv, model = tmp_path / "c.csv", tmp_path / "o.csv", tmp_path / "m.json"
    with crimes_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "x", "y", "time_from", "time_to", "entry", "tool"])
        for r in records:
            end = r["time_to"] or r["time_from"]
            w.writerow(
                [
                    r["id"],
                    r["x"],
                    r["y"],
                    r["time_from"].isoformat(),
                    end.isoformat(),
                    r["mo"]["entry"],
                    r["mo"]["tool"],
                ]
            )
    with off_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["crime_id", "offender_id"])
        w.writerows([c, o] for c, os_ in offenders.items() for o in os_)
    args = ["series-rank", "--crimes", str(crimes_csv), "--crime", "s8-S0-0", "--k", "3"]
    res = CliRunner().invoke(app, [*args, "--offenders", str(off_csv), "--model-out", str(model)])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 4
    assert sum("s8-S0-" in line for line in lines[1:]) >= 2
    again = CliRunner().invoke(app, [*args, "--model", str(model)])
    assert again.exit_code == 0
    assert again.output == res.output
    missing = CliRunner().invoke(app, [*args[:3], "--crime", "nope", "--model", str(model)])
    assert missing.exit_code == 1
