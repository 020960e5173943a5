"""``safecity orgs import FILE | list | tree``: the organisation tree from the command line.

Bad input ends as one line on stderr and a non-zero exit (see :func:`safecity.cli.main`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from safecity.orgs import importer, service
from safecity.orgs.models import ORG_KINDS
from safecity.platform import geo
from safecity.platform.cli_progress import progress_bar
from safecity.platform.db import transaction
from safecity.platform.errors import InvalidInput, NotFound, PayloadTooLarge
from safecity.platform.runtime import Runtime, build_runtime

app = typer.Typer(help="Organisations: import a CSV/YAML file, list them, show the tree.")
out = Console()

PROGRESS_FROM = 200  # rows; smaller files import without a progress bar


def _runtime() -> Runtime:
    return build_runtime()


@app.command("import")
def import_file(
    file: Path = typer.Argument(..., help="A .csv, .yaml/.yml or .json file of organisations."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and count, write nothing."),
) -> None:
    """Validate FILE completely, then create or update its organisations in one transaction."""
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    if file.stat().st_size > importer.MAX_IMPORT_BYTES:
        raise PayloadTooLarge(f"{file} is larger than {importer.MAX_IMPORT_BYTES} bytes")
    content = file.read_bytes()
    runtime = _runtime()
    try:
        with (
            progress_bar(out, file.name, show_from=PROGRESS_FROM) as progress,
            transaction(runtime.sessions) as session,
        ):
            result = importer.import_orgs(
                session=session,
                content=content,
                filename=file.name,
                dry_run=dry_run,
                progress=progress,
            )
    finally:
        runtime.close()
    verb = "would import" if dry_run else "imported"
    out.print(
        f"{verb} {result.total} organisation(s) from {result.filename}: "
        f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged",
        markup=False,
        highlight=False,
    )


@app.command("list")
def list_orgs(
    kind: str | None = typer.Option(None, help=f"Only this kind: {', '.join(ORG_KINDS)}."),
    include_inactive: bool = typer.Option(False, "--all", help="Include inactive orgs."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
) -> None:
    """Organisations, ordered by code."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            items, _ = service.list_orgs(
                session=session, kind=kind, include_inactive=include_inactive
            )
            rows: list[dict[str, Any]] = [
                {
                    "id": o.id,
                    "code": o.code,
                    "kind": o.kind,
                    "name_zh": o.name_zh,
                    "name_en": o.name_en,
                    "parent_id": o.parent_id,
                    "active": o.active,
                    "area": "synthetic" if o.area_synthetic else ("yes" if o.area else "-"),
                    "service_codes": list(o.service_codes),
                }
                for o in items
            ]
    finally:
        runtime.close()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    table = Table()
    table.add_column("code", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("name (zh)")
    table.add_column("name (en)")
    table.add_column("area", no_wrap=True)
    table.add_column("active", no_wrap=True)
    for row in rows:
        table.add_row(
            *(
                Text(str(v))
                for v in (
                    row["code"],
                    row["kind"],
                    row["name_zh"],
                    row["name_en"],
                    row["area"],
                    "yes" if row["active"] else "no",
                )
            )
        )
    out.print(table)


@app.command("tree")
def show_tree(
    include_inactive: bool = typer.Option(False, "--all", help="Include inactive orgs."),
) -> None:
    """The organisation tree."""
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            roots = service.tree(session=session, include_inactive=include_inactive)
            view = Tree(Text("organisations"), highlight=False)

            def add(branch: Tree, node: dict[str, Any]) -> None:
                org = node["org"]
                label = f"{org.code}  {org.name_zh} / {org.name_en}  [{org.kind}]"
                if not org.active:
                    label += "  (inactive)"
                child = branch.add(Text(label), highlight=False)
                for sub in node["children"]:
                    add(child, sub)

            for root in roots:
                add(view, root)
    finally:
        runtime.close()
    out.print(view)


@app.command("at")
def org_at(
    lng: float = typer.Argument(..., help="Longitude."),
    lat: float = typer.Argument(..., help="Latitude."),
    kind: str = typer.Option("station", help="station | district"),
    crs: str = typer.Option("wgs84", help="Coordinate system of the point: wgs84 | gcj02 | bd09"),
) -> None:
    """The organisation whose area contains a point (e.g. the station owning a sensor)."""
    point = geo.to_wgs84(lng, lat, crs=crs)
    runtime = _runtime()
    try:
        with runtime.sessions() as session:
            org = service.org_for_point(session=session, lat=point.lat, lng=point.lng, kind=kind)
            if org is None:
                raise NotFound(f"no active {kind} area contains {point.lng:.6f},{point.lat:.6f}")
            out.print(f"{org.code}  {org.name_zh} / {org.name_en}", highlight=False)
    finally:
        runtime.close()
