"""`safecity geo` and `safecity orgs at`: conversions, cells, the org covering a point."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from safecity.cli import app
from safecity.platform import geo

runner = CliRunner()


def test_convert_gcj02_to_wgs84_matches_the_library_function() -> None:
    result = runner.invoke(app, ["geo", "convert", "121.4900", "31.2400"])
    assert result.exit_code == 0, result.output
    lng, lat = (float(x) for x in result.output.split())
    expected = geo.gcj02_to_wgs84(121.49, 31.24)
    assert geo.distance_m((lng, lat), (expected.lng, expected.lat)) < 0.05


def test_cell_prints_an_h3_cell_of_the_requested_resolution() -> None:
    result = runner.invoke(app, ["geo", "cell", "121.49", "31.24", "--resolution", "7"])
    assert result.exit_code == 0, result.output
    assert geo.h3_resolution(result.output.strip()) == 7


@pytest.mark.parametrize(
    "args",
    [
        ["geo", "convert", "121.49", "31.24", "--from", "mars"],
        ["geo", "cell", "121.49", "31.24", "--resolution", "16"],
        ["geo", "cell", "500", "31.24"],
    ],
)
def test_bad_input_is_an_error_not_a_result(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0
