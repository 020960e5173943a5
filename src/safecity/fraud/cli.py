"""``safecity fraud sim | train | score | eval | feeds | feed``: anti-fraud commands.

``sim`` races the engine against the first transfer on the seeded replay simulator and
prints the figures (and writes them as JSON with ``--output``); ``train`` / ``score`` /
``eval`` work the classifiers in :mod:`safecity.fraud.ml`; ``feed`` plays the demo's
scam against a running platform. Errors end as one line
on stderr and a non-zero exit (``safecity.cli.main``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from safecity.fraud import evaluate, feeds
from safecity.fraud.engine import FraudEngine
from safecity.fraud.ml.store import number_scorer
from safecity.fraud.sim import SimConfig
from safecity.platform.errors import InvalidInput

app = typer.Typer(help="Anti-telecom-fraud early warning.", no_args_is_help=True)
out = Console()


def _check_output(path: Path | None) -> None:
    if path is None:
        return
    if not path.parent.exists():
        raise InvalidInput(f"--output folder {path.parent} does not exist")
    if path.exists() and path.is_dir():
        raise InvalidInput(f"--output {path} is a folder")


@app.command()
def sim(
    citizens: int = typer.Option(20_000, help="Simulated citizens."),
    hours: float = typer.Option(24.0, help="Simulated hours."),
    episodes: int = typer.Option(200, help="Scam episodes (victims)."),
    seed: int = typer.Option(7, help="Random seed (same seed, same stream)."),
    flag_share: float = typer.Option(0.6, help="Share of scam-site visits operators flag."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the figures as JSON."),
    model: Path | None = typer.Option(
        None, "--model", help="A scam-number model (`fraud train --kind number`) beside the rules."
    ),
    export_numbers: Path | None = typer.Option(
        None, "--export-numbers", help="Write callers' labelled rolling features as CSV."
    ),
) -> None:
    """Race the engine against each scam's first transfer on a simulated city."""
    if citizens < 100 or hours <= 0 or episodes < 1 or episodes > citizens // 2:
        raise InvalidInput("need --citizens ≥ 100, --hours > 0 and 1 ≤ --episodes ≤ citizens/2")
    if not 0.0 <= flag_share <= 1.0:
        raise InvalidInput("--flag-share must be between 0 and 1")
    _check_output(output)
    _check_output(export_numbers)
    engine = FraudEngine(model=number_scorer(model) if model is not None else None)
    config = SimConfig.for_city(
        citizens, seed=seed, hours=hours, episodes=episodes, flag_share=flag_share
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=out,
    ) as bar:
        task = bar.add_task("replaying", total=None)
        result = evaluate.run(
            config,
            engine=engine,
            progress=lambda n: bar.update(task, completed=n),
            export_numbers=export_numbers,
        )
    table = Table(
        title=f"fraud race, seed {seed}: {result.events:,} events, {result.episodes} scams"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    p50, p99 = result.time_to_warning_p50_s, result.time_to_warning_p99_s
    rows = [
        ("warned before the first transfer", f"{result.warned_before_transfer:.1%}", "≥ 90%"),
        ("warned at all", f"{result.warned_at_all:.1%}", ""),
        ("time to warning p50 / p99", f"{(p50 or 0) / 60:.1f} / {(p99 or 0) / 60:.1f} min", ""),
        ("warnings per true victim", f"{result.warnings_per_victim:.2f}", "≤ 3"),
        ("stop-pay on the first transfer", f"{result.stop_pay_on_first_transfer:.1%}", ""),
        (
            "false warnings / 10k citizens / day",
            f"{result.false_warnings_per_10k_citizens_day:.1f}",
            "",
        ),
        ("  of which to scam targets", f"{result.false_warnings_to_scam_targets:,}", ""),
        ("  of which to uninvolved people", f"{result.false_warnings_to_uninvolved:,}", ""),
        ("stop-pay on others' transfers", f"{result.stop_pay_false:,}", ""),
        (
            "block proposals right / wrong",
            f"{result.block_proposals_true} / {result.block_proposals_false}",
            "",
        ),
        ("engine cost per event", f"{result.engine_us_per_event:.1f} µs", "≤ 100 µs"),
        ("intake cost per event", f"{result.intake_us_per_event:.1f} µs", ""),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)
    if export_numbers is not None:
        out.print(f"callers' features → {export_numbers}", markup=False, highlight=False)
    if output is not None:
        data = {
            **dataclasses.asdict(result),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
        }
        output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.print(f"figures → {output}", markup=False, highlight=False)


@app.command("feeds")
def list_feeds(
    schema: str | None = typer.Option(None, help="Print one feed's JSON schema."),
) -> None:
    """The intake feeds: what each carries, its purpose and retention."""
    if schema is not None:
        spec = feeds.FEEDS.get(schema)
        if spec is None:
            raise InvalidInput(f"unknown feed {schema!r}; feeds: {', '.join(feeds.FEEDS)}")
        out.print_json(json.dumps(spec.model.model_json_schema(), ensure_ascii=False))
        return
    table = Table(title="fraud intake feeds")
    for column in ("feed", "retention", "description"):
        table.add_column(column)
    for name, spec in feeds.FEEDS.items():
        table.add_row(name, f"{spec.retention_days} days", spec.description)
    out.print(table)


@app.command("feed")
def feed_cmd(
    url: str = typer.Option("http://127.0.0.1:8000", "--url", help="SafeCity API base URL."),
    minutes: float = typer.Option(10.0, "--minutes", min=0.1, help="How long to play rounds."),
    wait: float = typer.Option(0.0, "--wait", min=0.0, help="Seconds to wait for /healthz."),
    seed: int = typer.Option(1, "--seed", help="Random seed of the made-up numbers."),
) -> None:
    """Play the demo's scam in real time against a running platform (over HTTP)."""
    import httpx
    from shapely.geometry import shape

    from safecity.fraud.demo_feed import play
    from safecity.orgs import service as orgs
    from safecity.platform.runtime import build_runtime
    from safecity.sim.city import device_token
    from safecity.sim.cli import wait_until_ready

    runtime = build_runtime()
    try:
        with runtime.sessions.begin() as session:
            token = device_token(session=session)
            stations, _ = orgs.list_orgs(session=session, kind="station", limit=500)
            areas = [s.area for s in stations if s.area]
            if not areas:
                raise InvalidInput("no station has an area: seed the demo city first")
            centre = shape(areas[0]).representative_point()
    finally:
        runtime.close()
    with httpx.Client(base_url=url, timeout=30.0) as client:
        if wait > 0:
            wait_until_ready(client, seconds=wait)
        rounds = play(
            client,
            token=token,
            point=(centre.y, centre.x),
            minutes=minutes,
            seed=seed,
            log=lambda line: out.print(line, markup=False, highlight=False),
        )
    out.print(f"played {rounds} round(s)")


KIND_NAMES = {"number": "scam-number", "site": "phishing-site", "text": "scam-text"}


def _read_training(
    kind: str, data: Path, label: str, ids: str | None
) -> tuple[Any, Any, list[str]]:
    from safecity.fraud.ml import datasets

    if kind == "text":
        texts, labels = datasets.read_text_file(data)
        return texts, labels, []
    x, y, names, _ = datasets.read_table(data, label=label, ids=ids)
    return x, y, names


@app.command()
def train(
    kind: str = typer.Option(..., "--kind", help="number | site | text"),
    data: Path = typer.Option(
        ..., "--data", help="CSV with a label column (text: label<TAB>text)."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Artifact folder to write."),
    label: str = typer.Option("label", help="Label column of the CSV (1 = scam)."),
    ids: str | None = typer.Option(
        None, "--id-column", help="A column that is an id, not a feature."
    ),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Train a scam-number, phishing-site or scam-text model and save it as an artifact."""
    from safecity.fraud.ml import store
    from safecity.fraud.ml.number_model import train_number_model
    from safecity.fraud.ml.site_model import train_site_model
    from safecity.fraud.ml.text_model import train_text_model

    if kind not in KIND_NAMES:
        raise InvalidInput(f"--kind must be one of {', '.join(KIND_NAMES)}")
    x, y, names = _read_training(kind, data, label, ids)
    if len(set(y.tolist())) != 2:
        raise InvalidInput("the labels must contain both classes (0 and 1)")
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=out) as bar:
        bar.add_task(f"training a {KIND_NAMES[kind]} model on {len(y):,} rows", total=None)
        model: Any
        if kind == "number":
            model = train_number_model(x, y, names, seed=seed)
        elif kind == "site":
            model = train_site_model(x, y, names, seed=seed)
        else:
            model = train_text_model(x, y, seed=seed)
    path = store.save_model(
        model, out_dir, training_data=f"{data.name}: {len(y)} rows, {int(y.sum())} positive"
    )
    out.print(f"{KIND_NAMES[kind]} model → {path}", markup=False, highlight=False)


@app.command()
def score(
    model_dir: Path = typer.Option(..., "--model", help="Artifact folder (from `fraud train`)."),
    data: Path = typer.Option(..., "--data", help="CSV of features (text: one text per line)."),
    ids: str | None = typer.Option(
        None, "--id-column", help="A column that is an id, not a feature."
    ),
    top: int = typer.Option(3, min=1, max=10, help="Reason codes per row."),
    limit: int = typer.Option(20, min=1, help="Rows to print (highest scores first)."),
) -> None:
    """Score rows with a trained model: probability, verdict at its threshold, reason codes."""
    from safecity.fraud.ml import datasets, store

    model: Any = store.load_model(model_dir)
    rows: list[tuple[str, float, list[Any]]] = []
    if model.kind == "scam-text":
        if not data.is_file():
            raise InvalidInput(f"{data} does not exist")
        texts = [t for t in data.read_text(encoding="utf-8").splitlines() if t.strip()]
        if not texts:
            raise InvalidInput(f"{data} has no text lines")
        probs = model.predict_proba(texts)
        rows = [
            (t[:40], float(p), model.reason_codes(t, top=top))
            for t, p in zip(texts, probs, strict=True)
        ]
    else:
        header = datasets.read_header(data)
        label = "label" if "label" in header else None  # a labelled file scores as well
        x, _, names, row_ids = datasets.read_table(data, label=label, ids=ids)
        records = [dict(zip(names, map(float, r), strict=True)) for r in x]
        probs = model.predict_proba(records)
        rows = [
            (rid, float(p), model.reason_codes(rec, top=top))
            for rid, p, rec in zip(row_ids, probs, records, strict=True)
        ]
    rows.sort(key=lambda r: -r[1])
    table = Table(
        title=f"{model.kind} scores (threshold {model.threshold:.3f}), {len(rows):,} rows"
    )
    for col in ("row", "score", "verdict", "reasons"):
        table.add_column(col)
    for rid, p, reasons in rows[:limit]:
        why = ", ".join(f"{r.feature} {r.contribution:+.2f}" for r in reasons)
        table.add_row(rid, f"{p:.3f}", "scam" if p >= model.threshold else "", why)
    out.print(table)


@app.command("eval")
def eval_cmd(
    dataset: str = typer.Option(..., "--dataset", help="sichuan | phishing | sms"),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of the public sets."),
    seed: int = typer.Option(0, help="Seed of the stratified 70/30 split."),
) -> None:
    """Train on 70 % of a public set and report AUC, recall at 1 %/5 % FPR and F1 on the rest
    (the full protocols are in benchmarks/fraud_*.py)."""
    import numpy as np
    from sklearn.model_selection import train_test_split  # type: ignore[import-untyped]

    from safecity.fraud.ml import datasets, metrics
    from safecity.fraud.ml.number_model import train_number_model
    from safecity.fraud.ml.site_model import train_site_model
    from safecity.fraud.ml.text_model import train_text_model

    if dataset not in datasets.DATASETS:
        raise InvalidInput(f"--dataset must be one of {', '.join(datasets.DATASETS)}")
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(), console=out) as bar:
        bar.add_task(f"{dataset}: loading, training, scoring", total=None)
        if dataset == "sms":
            texts, y = datasets.load_sms(data_root)
            idx = np.arange(len(texts))
            tr, te = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
            text_model = train_text_model([texts[i] for i in tr], y[tr], seed=seed)
            scores = text_model.predict_proba([texts[i] for i in te])
            threshold = text_model.threshold
        else:
            if dataset == "sichuan":
                x, y, names, _ = datasets.load_sichuan(data_root)
                trainer: Any = train_number_model
            else:
                x, y, names = datasets.load_phishing(data_root)
                trainer = train_site_model
            tr, te = train_test_split(
                np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed
            )
            model = trainer(x[tr], y[tr], names, seed=seed)
            scores = model.predict_proba(x[te])
            threshold = model.threshold
        figures = metrics.summary(y[te], scores, threshold)
    table = Table(title=f"{dataset}: 70/30 stratified split, seed {seed}, {len(te):,} test rows")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in (
        "roc_auc",
        "average_precision",
        "recall_at_1pct_fpr",
        "recall_at_5pct_fpr",
        "f1",
        "accuracy",
    ):
        table.add_row(key, f"{figures[key]:.4f}")
    out.print(table)
