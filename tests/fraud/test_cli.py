"""``safecity fraud sim | train | score | eval | feeds``: happy paths and one-line errors."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from safecity import cli


def run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["safecity", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code) if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def number_csv(path: Path, rows: int = 400, seed: int = 1) -> Path:
    rng = random.Random(seed)
    lines = ["number,calls_per_hour,distinct_callees,sim_age_days,label"]
    for i in range(rows):
        scam = rng.random() < 0.3
        rate = rng.gauss(40 if scam else 5, 8)
        age = (
            ""
            if rng.random() < 0.05
            else f"{rng.randint(0, 20) if scam else rng.randint(30, 3000)}"
        )
        lines.append(f"n{i},{rate:.1f},{int(max(0, rate * 3))},{age},{int(scam)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sim_prints_the_race_and_writes_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "race.json"
    code, out, _ = run_main(
        monkeypatch,
        capsys,
        "fraud",
        "sim",
        "--citizens",
        "400",
        "--episodes",
        "8",
        "--hours",
        "12",
        "--output",
        str(output),
    )
    assert code == 0
    assert "warned before the first transfer" in out
    figures = json.loads(output.read_text())
    assert figures["episodes"] > 0
    assert 0 <= figures["warned_before_transfer"] <= 1
    code, _, err = run_main(monkeypatch, capsys, "fraud", "sim", "--episodes", "0")
    assert code == 2
    assert err.startswith("error: need --citizens")
    code, _, err = run_main(
        monkeypatch, capsys, "fraud", "sim", "--output", str(tmp_path / "nowhere" / "x.json")
    )
    assert code == 2
    assert "does not exist" in err


def test_train_then_score_a_number_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = number_csv(tmp_path / "numbers.csv")
    model = tmp_path / "model"
    code, out, err = run_main(
        monkeypatch,
        capsys,
        "fraud",
        "train",
        "--kind",
        "number",
        "--data",
        str(data),
        "--id-column",
        "number",
        "--out",
        str(model),
    )
    assert code == 0, err
    assert (model / "metadata.json").is_file()
    code, out, err = run_main(
        monkeypatch,
        capsys,
        "fraud",
        "score",
        "--model",
        str(model),
        "--data",
        str(data),
        "--id-column",
        "number",
        "--limit",
        "5",
    )
    assert code == 0, err
    assert "scam" in out
    assert "calls_per_hour" in out  # reason codes name the features
    meta = json.loads((model / "metadata.json").read_text())
    meta["format_version"] = 99  # a model file from another version
    (model / "metadata.json").write_text(json.dumps(meta))
    code, _, err = run_main(
        monkeypatch, capsys, "fraud", "score", "--model", str(model), "--data", str(data)
    )
    assert code == 2
    assert err.startswith("error: ")
    assert "version" in err
    assert len(err.strip().splitlines()) == 1


def test_train_and_score_a_text_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scam = [
        "请将资金转入安全账户配合调查",
        "兼职刷单日结佣金",
        "您的快递丢失可双倍赔偿请点击链接退款",
    ]
    ham = ["晚上回家吃饭吗", "明天九点开会", "快递已放门口", "生日快乐！"]
    lines = [f"1\t{t}{i}" for i in range(10) for t in scam] + [
        f"0\t{t}{i}" for i in range(10) for t in ham
    ]
    data = tmp_path / "sms.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = tmp_path / "text-model"
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "fraud",
        "train",
        "--kind",
        "text",
        "--data",
        str(data),
        "--out",
        str(model),
    )
    assert code == 0, err
    texts = tmp_path / "texts.txt"
    texts.write_text("请立即转入安全账户\n今晚一起吃饭\n", encoding="utf-8")
    code, out, err = run_main(
        monkeypatch, capsys, "fraud", "score", "--model", str(model), "--data", str(texts)
    )
    assert code == 0, err
    assert out.index("安全账户") < out.index("今晚一起吃饭")  # the scam text ranks first
    bad = tmp_path / "bad.tsv"
    bad.write_text("maybe\tsome text\n", encoding="utf-8")
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "fraud",
        "train",
        "--kind",
        "text",
        "--data",
        str(bad),
        "--out",
        str(model),
    )
    assert code == 2
    assert "label" in err


def test_eval_reads_a_public_set_from_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "uci-phishing-websites"
    folder.mkdir()
    rng = random.Random(4)
    rows = ["a,b,c,Result"]
    for _ in range(300):
        phishing = rng.random() < 0.45
        rows.append(
            ",".join(str(rng.choice([-1, 0]) if phishing else rng.choice([0, 1])) for _ in range(3))
            + ("," + ("-1" if phishing else "1"))
        )
    (folder / "phishing_websites.csv").write_text("\n".join(rows) + "\n")
    code, out, err = run_main(
        monkeypatch, capsys, "fraud", "eval", "--dataset", "phishing", "--data-root", str(tmp_path)
    )
    assert code == 0, err
    assert "roc_auc" in out
    code, _, err = run_main(monkeypatch, capsys, "fraud", "eval", "--dataset", "fax")
    assert (code, err.strip()) == (2, "error: --dataset must be one of sichuan, phishing, sms")
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "fraud",
        "eval",
        "--dataset",
        "sms",
        "--data-root",
        str(tmp_path / "no"),
    )
    assert code != 0
    assert "not found" in err


def test_feeds_lists_every_feed() -> None:
    result = CliRunner().invoke(cli.app, ["fraud", "feeds"])
    assert result.exit_code == 0
    for feed in ("call", "sms", "web", "transfer", "report", "confirmed"):
        assert feed in result.output
