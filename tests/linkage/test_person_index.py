"""Person index on a few hundred synthetic Chinese records with planted duplicates."""

import datetime as dt
import json
import random
from typing import Any

import pytest

from safecity.linkage import comparisons as comp
from safecity.linkage import idcard
from safecity.linkage import person_index as pi

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董单"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国文红玉兰春晓"
REGIONS = ["110105", "310104", "440305", "510107", "330106"]


def _people(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))
        out.append(
            {
                "unique_id": f"p{i}",
                "surname": rng.choice(SURNAMES),
                "given_name": "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
                "dob": born.isoformat(),
                "id_number": idcard.make(rng.choice(REGIONS), born, rng.randrange(1000)),
                "phone": f"1{rng.randrange(3, 9)}{rng.randrange(10**9):09d}",
                "address": f"{rng.choice(['中山路', '人民路', '解放路'])}{rng.randrange(1, 300)}号",
            }
        )
    return out


def _dup(rec: dict[str, Any], uid: str, rng: random.Random) -> dict[str, Any]:
    d = dict(rec, unique_id=uid, truth=rec["unique_id"])
    d["phone"] = "+86 " + d["phone"][:3] + " " + d["phone"][3:]
    roll = rng.random()
    if roll < 0.2:
        d["address"] = None
    elif roll < 0.35:
        d["given_name"] = rng.choice(GIVEN)
    elif roll < 0.5:
        y, m, day = d["dob"].split("-")
        d["dob"] = f"{y}-{day}-{m}" if int(day) <= 12 else f"{y}-{m}-{int(day) - 1:02d}"
    elif roll < 0.65:
        d["id_number"] = None
    elif roll < 0.8:
        d["phone"] = d["phone"][:-1] + str((int(d["phone"][-1]) + 1) % 10)
    return d


@pytest.fixture(scope="module")
def data() -> list[dict[str, Any]]:
    rng = random.Random(11)
    people = _people(300)
    rows = [dict(p, truth=p["unique_id"]) for p in people]
    rows += [_dup(p, f"{p['unique_id']}-d", rng) for p in people[1:120]]
    rows.append(dict(people[0], unique_id="p0-d", truth="p0"))
    return rows


@pytest.fixture(scope="module")
def model(data: list[dict[str, Any]]) -> pi.Model:
    return pi.train([data], u_max_pairs=5e4)


def test_training_produces_a_model(model: pi.Model) -> None:
    assert model.chinese
    names = [c["output_column_name"] for c in model.splink_settings["comparisons"]]
    assert {"surname", "given_name", "dob", "id_number", "phone"} <= set(names)
    assert model.versions["splink"].startswith("5.")
    assert model.splink_settings["blocking_rules_to_generate_predictions"]


def test_planted_duplicate_found_above_threshold(
    data: list[dict[str, Any]], model: pi.Model
) -> None:
    pred = pi.predict([data], model)
    pairs = {
        frozenset((p["unique_id_l"], p["unique_id_r"])): p for p in pred.pairs(min_probability=0.0)
    }
    hit = pairs[frozenset(("p0", "p0-d"))]
    assert hit["decision"] == "link"
    assert hit["match_probability"] >= model.thresholds.auto_link
    clusters = pi.cluster(pred)
    assert clusters["p0"] == clusters["p0-d"]
    assert clusters["p0"] != clusters["p1"]


def test_invalid_id_is_flagged_not_compared(model: pi.Model) -> None:
    rec = _people(2, seed=3)
    bad = dict(rec[0], unique_id="bad")
    bad["id_number"] = bad["id_number"][:-1] + ("0" if bad["id_number"][-1] != "0" else "1")
    pred = pi.predict([[rec[0], rec[1], bad]], model)
    assert pred.id_errors == {"bad": "check digit mismatch"}
    prepared = comp.prepare_record(bad)
    assert prepared["id_number"] is None
    assert prepared["id_error"] == "check digit mismatch"


def test_model_json_round_trip(model: pi.Model, tmp_path: Any) -> None:
    path = tmp_path / "model.json"
    model.save(path)
    again = pi.Model.load(path)
    assert again.splink_settings == model.splink_settings
    assert again.thresholds == model.thresholds
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["versions"]["splink"] = "3.9.0"
    with pytest.raises(pi.PersonIndexError, match="retrain"):
        pi.Model.from_json(json.dumps(doc))
    with pytest.raises(pi.PersonIndexError, match="format"):
        pi.Model.from_json('{"format": "other/9"}')


def test_duplicate_ids_and_empty_input_rejected() -> None:
    with pytest.raises(pi.PersonIndexError, match="duplicate unique_id"):
        pi.prepare([[{"unique_id": "a"}, {"unique_id": "a"}]])
    with pytest.raises(pi.PersonIndexError, match="empty"):
        pi.prepare([[]])


def test_normalisers() -> None:
    assert comp.normalise_phone("+86 138 0013 8000") == "13800138000"
    assert comp.normalise_phone("0086-13800138000") == "13800138000"
    assert comp.to_pinyin("单", surname=True) == "shan"
    assert comp.to_pinyin("曾", surname=True) == "zeng"
    assert comp.split_chinese_name("欧阳修") == ("欧阳", "修")
    rec = comp.prepare_record({"unique_id": 1, "full_name": "张 三", "dob": "19800102"})
    assert (rec["surname"], rec["given_name"], rec["dob"]) == ("张", "三", "1980-01-02")
    assert rec["surname_py"] == "zhang"


def test_thresholds_decide() -> None:
    t = pi.Thresholds(auto_link=0.95, review=0.5)
    assert [t.decide(p) for p in (0.99, 0.7, 0.1)] == ["link", "review", "no_link"]
    with pytest.raises(pi.PersonIndexError):
        pi.Thresholds(auto_link=0.4, review=0.6)


def test_cli_dedupe_and_errors(data: list[dict[str, Any]], tmp_path: Any) -> None:
    import csv

    from typer.testing import CliRunner

    from safecity.cli import app

    path = tmp_path / "people.csv"
    cols = ["unique_id", "surname", "given_name", "dob", "id_number", "phone", "address"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(data)
        writer.writerow(dict(data[5], unique_id="badid", id_number="110105194912310021"))
    runner = CliRunner()
    out = tmp_path / "m.json"
    res = runner.invoke(app, ["linkage", "dedupe", str(path), "--model-out", str(out)])
    assert res.exit_code == 0, res.output
    assert "invalid ID number on badid: check digit mismatch" in res.output
    assert "link" in res.output
    assert pi.Model.load(out).chinese
    res = runner.invoke(app, ["linkage", "dedupe", str(tmp_path / "missing.csv")])
    assert res.exit_code == 1
    res = runner.invoke(app, ["linkage", "bench", "--dataset", "nope"])
    assert res.exit_code == 1
    assert "unknown dataset" in res.output


def test_prior_is_calibrated_from_the_scored_pairs(
    data: list[dict[str, Any]], model: pi.Model
) -> None:
    prior = model.training["prior"]
    assert prior["iterations"] >= 1
    assert model.splink_settings["probability_two_random_records_match"] == prior["calibrated"]
    # 120 planted duplicate pairs among 420 records: the label-free fixed point lands
    # near the true share of matching pairs, not at the deterministic-rule guess.
    true_share = 120 / (len(data) * (len(data) - 1) / 2)
    assert true_share / 2 < prior["calibrated"] < true_share * 2


def test_expected_f1_threshold_is_label_free_and_sane(
    data: list[dict[str, Any]], model: pi.Model
) -> None:
    pred = pi.predict([data], model)
    cut = pi.expected_f1_threshold(pred)
    assert 0.0 < cut < 1.0
    kept = {
        frozenset((p["unique_id_l"], p["unique_id_r"])) for p in pred.pairs(min_probability=cut)
    }
    assert frozenset(("p0", "p0-d")) in kept
    truth = {r["unique_id"]: r["truth"] for r in data}
    correct = sum(1 for pair in kept if len({truth[u] for u in pair}) == 1)
    assert correct / len(kept) > 0.9


def test_western_blocking_rules_follow_the_fields() -> None:
    western = comp.build_blocking_rules(["given_name", "surname", "dob", "postcode"])
    assert 'l."given_name" = r."surname"' in western
    assert any("split_part" in rule for rule in western)
    assert not any("birth_place" in rule or "soc_sec_id" in rule for rule in western)
    assert len(western) == len(set(western))
    only_names = comp.build_blocking_rules(["given_name", "surname"])
    assert all('"dob"' not in rule and '"postcode"' not in rule for rule in only_names)
