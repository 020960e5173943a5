"""`safecity linkage ...`: benchmark runs and CSV dedupe with the person index."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

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
