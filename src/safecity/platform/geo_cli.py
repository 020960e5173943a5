"""``safecity geo``: coordinate conversion and H3 cells (``safecity orgs at`` finds the org)."""

from __future__ import annotations

import typer

from safecity.platform import geo

app = typer.Typer(help="Places: GCJ-02/BD-09 ↔ WGS84 and H3 cells.")


@app.command("convert")
def convert(
    lng: float = typer.Argument(..., help="Longitude."),
    lat: float = typer.Argument(..., help="Latitude."),
    src: str = typer.Option("gcj02", "--from", help="wgs84 | gcj02 | bd09"),
    dst: str = typer.Option("wgs84", "--to", help="wgs84 | gcj02 | bd09"),
) -> None:
    """Convert a point between coordinate systems (Chinese maps report GCJ-02 or BD-09)."""
    point = geo.convert(lng, lat, src=src, dst=dst)
    typer.echo(f"{point.lng:.7f} {point.lat:.7f}")


@app.command("cell")
def cell(
    lng: float = typer.Argument(..., help="WGS84 longitude."),
    lat: float = typer.Argument(..., help="WGS84 latitude."),
    resolution: int = typer.Option(geo.DEFAULT_H3_RESOLUTION, help="H3 resolution 0–15."),
) -> None:
    """The H3 cell of a WGS84 point."""
    typer.echo(geo.h3_cell(lat=lat, lng=lng, resolution=resolution))
