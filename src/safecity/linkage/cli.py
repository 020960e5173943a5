"""`safecity linkage ...`: benchmark runs and CSV dedupe with the person index."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from safecity.platform.runtime import Runtime
    from safecity.settings import Settings

app = typer.Typer(help="Crime linkage: the person index (Splink).", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command("bench")
def bench(
    dataset: Annotated[str, typer.Option(help="febrl3 | febrl4 | historical-50k")] = "febrl3",
) -> None:
    """Train on a labelled benchmark set without its labels and report accuracy."""
    from safecity.linkage import datasets
    from safecity.linkage import person_index as pi

    if dataset not in datasets.DATASETS:
        _fail(f"unknown dataset {dataset!r}; choose one of {', '.join(datasets.DATASETS)}")
    try:
        tables, link_type = datasets.load(dataset)
    except OSError as exc:
        _fail(f"cannot read the {dataset} files under {datasets.bench_root()}: {exc.strerror}")
    try:
        model = pi.train(tables, link_type=link_type)
        pred = pi.predict(tables, model, retain=["truth"])
    except pi.PersonIndexError as exc:
        _fail(str(exc))
    total = pi.true_pair_count(tables, link_type)
    row = pred.query(
        "SELECT count(*), count(*) FILTER (WHERE truth_l = truth_r), "  # noqa: S608
        f"count(*) FILTER (WHERE match_probability >= {model.thresholds.auto_link}), "
        f"count(*) FILTER (WHERE match_probability >= {model.thresholds.auto_link} "
        "AND truth_l = truth_r) FROM {pairs}"
    )[0]
    n, found, linked, correct = (int(x) for x in row)
    p = correct / linked if linked else 0.0
    r = correct / total if total else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    typer.echo(
        f"{dataset}: {n} candidate pairs, blocking recall {found / total:.4f}, "
        f"at auto-link {model.thresholds.auto_link}: P {p:.4f} R {r:.4f} F1 {f1:.4f}"
    )


@app.command("dedupe")
def dedupe(
    file: Annotated[Path, typer.Argument(help="CSV with unique_id and person fields")],
    model_out: Annotated[Path | None, typer.Option("--model-out", help="save the model")] = None,
    limit: Annotated[int, typer.Option(help="pairs to print")] = 20,
) -> None:
    """Deduplicate a CSV of person records; prints linked and review pairs."""
    from safecity.linkage import person_index as pi

    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            records = [
                {k: (v.strip() or None) if isinstance(v, str) else v for k, v in row.items() if k}
                for row in csv.DictReader(fh)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        _fail(f"cannot read {file}: {exc}")
    try:
        model = pi.train([records])
        pred = pi.predict([records], model)
    except pi.PersonIndexError as exc:
        _fail(str(exc))
    if model_out is not None:
        model.save(model_out)
    for uid, why in sorted(pred.id_errors.items()):
        typer.echo(f"invalid ID number on {uid}: {why}")
    for pair in pred.pairs(limit=limit):
        typer.echo(
            f"{pair['decision']:7} {pair['match_probability']:.4f} "
            f"{pair['unique_id_l']} ~ {pair['unique_id_r']}"
        )


_CRIME_COLUMNS = ("id", "x", "y", "lat", "lng", "time_from", "time_to", "property", "target")


def _read_crimes(file: Path) -> tuple[list[dict[str, object]], list[str]]:
    """Crime records from a CSV: the core columns above; every other column is an MO field."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        _fail(f"cannot read {file}: {exc}")
    if not rows:
        _fail(f"{file} has no crimes")
    mo_fields = [c for c in rows[0] if c and c not in _CRIME_COLUMNS]
    records: list[dict[str, object]] = []
    for row in rows:
        rec: dict[str, object] = {
            k: (row.get(k) or "").strip() or None for k in _CRIME_COLUMNS if k in row
        }
        if rec.get("property"):
            rec["property"] = [p.strip() for p in str(rec["property"]).split(";")]
        rec["mo"] = {f: (row.get(f) or "").strip() or None for f in mo_fields}
        records.append(rec)
    return records, mo_fields


@app.command("series-rank")
def series_rank(
    crimes: Annotated[
        Path,
        typer.Option(
            "--crimes",
            help="CSV: id, x/y or lat/lng, time_from, time_to, MO columns, property, target",
        ),
    ],
    crime: Annotated[str, typer.Option("--crime", help="crime id to rank others for")],
    model: Annotated[Path | None, typer.Option("--model", help="trained model file")] = None,
    offenders: Annotated[
        Path | None, typer.Option("--offenders", help="CSV crime_id,offender_id: train here")
    ] = None,
    model_out: Annotated[Path | None, typer.Option("--model-out", help="save it")] = None,
    k: Annotated[int, typer.Option(help="how many crimes to list")] = 10,
) -> None:
    """Rank the crimes most likely committed by the same offender as --crime, with reasons."""
    from safecity.linkage import series as ser
    from safecity.linkage import series_features as sf
    from safecity.platform.errors import SafeCityError

    records, mo_fields = _read_crimes(crimes)
    try:
        if model is not None:
            trained = ser.SeriesModel.load(model)
        elif offenders is not None:
            links: dict[str, set[str]] = {}
            with offenders.open(newline="", encoding="utf-8-sig") as fh:
                for row in csv.DictReader(fh):
                    links.setdefault(row["crime_id"], set()).add(row["offender_id"])
            has = {key for r in records for key, v in r.items() if v is not None}
            spec = sf.FeatureSpec(tuple(mo_fields), "property" in has, "target" in has)
            trained = ser.train(records, links, spec)
        else:
            _fail("give --model FILE or --offenders FILE (to train on solved crimes)")
        if model_out is not None:
            trained.save(model_out)
        ranked = ser.SeriesIndex(trained, records).rank_for(crime, k=k)
    except (SafeCityError, OSError, KeyError, csv.Error) as exc:
        _fail(getattr(exc, "detail", None) or str(exc))
    typer.echo(f"model: {trained.scorer.kind} {trained.scorer.params}")
    for r in ranked:
        why = ", ".join(f"{n} {v:+.2f}" for n, v in list(r.contributions.items())[:4])
        facts = f"{r.facts['distance_m']:.0f} m, {r.facts['gap_days']:.1f} d"
        typer.echo(f"{r.score:.3f}  {r.crime_id:12} {facts:20} {why}")


@app.command("series-eval")
def series_eval(
    dataset: Annotated[str, typer.Option(help="crimelinkage")] = "crimelinkage",
    seeds: Annotated[int, typer.Option(help="fold seeds 0..N-1")] = 1,
) -> None:
    """Cross-validate LR and LightGBM on a labelled crime set (grouped by first crime)."""
    import numpy as np
    from rich.progress import Progress
    from sklearn.model_selection import GroupKFold  # type: ignore[import-untyped]

    from safecity.linkage import datasets
    from safecity.linkage import series as ser
    from safecity.linkage import series_features as sf

    if dataset != "crimelinkage":
        _fail(f"unknown dataset {dataset!r}; choose crimelinkage")
    folder = datasets.bench_root() / "crimelinkage-synthetic"
    try:
        records, offenders = ser.load_crimelinkage(folder)
    except OSError as exc:
        _fail(f"cannot read the crimelinkage files under {folder}: {exc.strerror}")
    spec = ser.CRIMELINKAGE_SPEC
    crimes_ = sf.parse_crimes(records, spec)
    table = sf.CrimeTable(crimes_, spec, sf.category_rarity(crimes_, spec))
    solved = [n for n, c in enumerate(crimes_) if offenders.get(c.id)]
    i, j = ser.candidate_pairs(table, solved, 365.0)
    y = ser.linked(table, offenders, i, j)
    x = sf.pair_features(table, i, j)
    typer.echo(f"{len(solved)} solved crimes, {len(y)} pairs, {int(y.sum())} linked")
    with Progress() as bar:
        job = bar.add_task("folds", total=5 * seeds)
        for seed in range(seeds):
            oof = {"logistic": np.zeros(len(y)), "gbm": np.zeros(len(y))}
            for tr, te in GroupKFold(5, shuffle=True, random_state=seed).split(x, y, i):
                for kind in ("logistic", "gbm"):
                    fitted = ser.fit(x[tr], y[tr], i[tr], kind, seed=seed)
                    oof[kind][te] = fitted.logit(x[te])
                bar.advance(job)
            for kind, score in oof.items():
                m = ser.ranking_metrics(y, score)
                bar.console.print(
                    f"seed {seed} {kind:8}  AUC {m['auc']:.3f}  TPR@5%FPR "
                    f"{m['tpr_at_5fpr']:.3f}  P@50 {m['p_at_50']:.2f}  P@100 {m['p_at_100']:.2f}"
                )


# --- the product index on the database: ``safecity linkage index ingest | train | run`` ---

index_app = typer.Typer(help="The person index on the database.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _runtime() -> Runtime:
    from safecity.platform.runtime import build_runtime

    return build_runtime()


@contextmanager
def _index_session(what: str) -> Iterator[tuple[Session, Settings]]:
    """A transaction on the configured database with a spinner; errors end as one line."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from safecity.platform.db import transaction
    from safecity.platform.errors import SafeCityError

    runtime = _runtime()
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console()
    )
    try:
        with progress, transaction(runtime.sessions) as session:
            progress.add_task(what, total=None)
            yield session, runtime.settings
    except SafeCityError as exc:
        _fail(exc.detail)
    finally:
        runtime.close()


@index_app.command("ingest")
def index_ingest() -> None:
    """Take in every case person (idempotent: unchanged records are left alone)."""
    from safecity.linkage import index
    from safecity.security import audit

    with _index_session("ingesting case persons") as (session, _):
        changed = index.ingest_cases(session, principal=audit.SYSTEM)
    typer.echo(f"{changed} record(s) created or changed")


@index_app.command("train")
def index_train() -> None:
    """Train a model on the index and make it the active one."""
    from safecity.linkage import index
    from safecity.security import audit

    with _index_session("training the person index") as (session, settings):
        row = index.train_model(session, principal=audit.SYSTEM, settings=settings)
        line = f"model {row.version} active ({row.metrics.get('records')} records)"
    typer.echo(line)


@index_app.command("run")
def index_run() -> None:
    """Score the records not yet scored with the active model (link, queue)."""
    from safecity.linkage import index
    from safecity.security import audit

    with _index_session("scoring new records") as (session, settings):
        report = index.run(session, principal=audit.SYSTEM, settings=settings)
    typer.echo(
        f"model {report.model_version}: {report.scored} scored, {report.auto_linked} "
        f"auto-linked, {report.queued} queued, {report.skipped_rejected} skipped as rejected "
        f"in {report.seconds:.1f} s"
    )
