"""Counts CSV parsing, gaps, DST, outages and bad input."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safecity.crowd.datasets import (
    HourlyCounts,
    load_benchmark,
    mark_outages,
    parse_timestamp,
    read_counts_csv,
    synthetic_counts,
    write_counts_csv,
)
from safecity.platform.errors import InvalidInput

HEADER = "hotspot,timestamp,count\n"


def test_reads_long_csv_and_marks_gaps() -> None:
    text = HEADER + (
        "bund,2026-10-01T10:00:00+08:00,100\n"
        "bund,2026-10-01T12:00:00+08:00,300\n"
        "yuyuan,2026-10-01T02:00:00Z,50\n"
    )
    counts, report = read_counts_csv(text, tz="Asia/Shanghai", region="CN")
    assert counts.sites == ("bund", "yuyuan")
    assert counts.start == datetime(2026, 10, 1, 2, tzinfo=UTC)
    assert counts.hours == 3
    assert counts.values[0].tolist() == [100.0, 50.0]
    assert np.isnan(counts.values[1, 0])  # the missing 11:00 is a marked gap, not filled
    assert counts.values[2, 0] == 300.0
    assert report.rows == 3
    assert report.gaps == 3


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("bund,2026-10-01T10:00:00+08:00,-5", "negative count"),
        ("bund,2026-10-01T10:00:00+08:00,2000001", "above the limit"),
        ("bund,2026-10-01T10:00:00+08:00,12.5", "not a whole number"),
        ("bund,2026-10-01T10:00:00+08:00,many", "not a number"),
        ("bund,2026-10-01T10:30:00+08:00,5", "not on the hour"),
        ("bund,yesterday,5", "not ISO 8601"),
        ("bund,2026-10-01T10:00:00,5", "no UTC offset"),
        ("bund,2026-10-01T10:00:00+08:00", "expected 3 fields"),
        (",2026-10-01T10:00:00+08:00,5", "empty hotspot"),
    ],
)
def test_bad_rows_give_clear_errors(row: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        read_counts_csv(HEADER + row + "\n", max_count=2_000_000)
    assert "line 2" in info.value.detail


def test_duplicated_hour_is_an_error_even_across_offsets() -> None:
    text = HEADER + "bund,2026-10-01T10:00:00+08:00,5\nbund,2026-10-01T02:00:00Z,6\n"
    with pytest.raises(InvalidInput, match="line 3: duplicated hour"):
        read_counts_csv(text)


def test_unknown_hotspot_and_bad_header() -> None:
    with pytest.raises(InvalidInput, match="unknown hotspot 'nowhere'"):
        read_counts_csv(HEADER + "nowhere,2026-10-01T02:00:00Z,6\n", known_hotspots=["bund"])
    with pytest.raises(InvalidInput, match="header must be"):
        read_counts_csv("site,time,n\nbund,2026-10-01T02:00:00Z,6\n")
    with pytest.raises(InvalidInput, match="no data rows"):
        read_counts_csv(HEADER + "\n")
    with pytest.raises(InvalidInput, match="no such file"):
        read_counts_csv(Path("/nonexistent/counts.csv"))


def test_daylight_saving_local_times() -> None:
    # Melbourne: clocks go forward 2022-10-02 02:00 → 03:00, back 2022-04-03 03:00 → 02:00
    with pytest.raises(InvalidInput, match=r"does not exist|ambiguous"):
        parse_timestamp("2022-10-02 02:00", tz="Australia/Melbourne", where="x")
    with pytest.raises(InvalidInput, match="ambiguous"):
        parse_timestamp("2022-04-03 02:00", tz="Australia/Melbourne", where="x")
    # the hours either side are one UTC hour apart across the jump: no row lost or doubled
    before = parse_timestamp("2022-10-02 01:00", tz="Australia/Melbourne", where="x")
    after = parse_timestamp("2022-10-02 03:00", tz="Australia/Melbourne", where="x")
    assert after - before == timedelta(hours=1)
    text = HEADER + (
        "s,2022-04-03T02:00:00+11:00,10\n"  # first 02:00 (daylight time)
        "s,2022-04-03T02:00:00+10:00,20\n"  # second 02:00 (standard time)
    )
    counts, _ = read_counts_csv(text, tz="Australia/Melbourne")
    assert counts.values[:, 0].tolist() == [10.0, 20.0]


def test_outage_days_are_blanked_not_filled() -> None:
    counts = synthetic_counts(sites=("a", "b"), days=3)
    values = counts.values.copy()
    values[24:48, 1] = 0.0
    values[30, 1] = np.nan
    blanked, n = mark_outages(HourlyCounts(counts.sites, counts.start, values))
    assert n == 23
    assert np.isnan(blanked.values[24:48, 1]).all()
    assert not np.isnan(blanked.values[:, 0]).any()


def test_unknown_benchmark_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown dataset"):
        load_benchmark("paris-2030")
    with pytest.raises(InvalidInput, match="dataset folder not found"):
        load_benchmark("melbourne-2021", root=tmp_path)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=0, max_value=200),
            st.integers(min_value=0, max_value=10**6),
        ),
        min_size=1,
        max_size=30,
        unique_by=lambda r: (r[0], r[1]),
    )
)
def test_roundtrip_any_valid_rows(rows: list[tuple[str, int, int]]) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    lines = [
        f"{s},{(base + timedelta(hours=h)).strftime('%Y-%m-%dT%H:%M:%SZ')},{c}" for s, h, c in rows
    ]
    counts, report = read_counts_csv(HEADER + "\n".join(lines) + "\n")
    assert report.rows == len(rows)
    assert int(np.sum(~np.isnan(counts.values))) == len(rows)
    for s, h, c in rows:
        assert counts.values[counts.index_of(base + timedelta(hours=h)), counts.site_index(s)] == c


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=60))
def test_parser_never_crashes_on_garbage(text: str) -> None:
    with contextlib.suppress(InvalidInput):
        read_counts_csv(HEADER + text + "\n")


def test_write_then_read(tmp_path: Path) -> None:
    counts = synthetic_counts(sites=("x", "y"), days=2)
    counts.values[5, 0] = np.nan
    path = tmp_path / "c.csv"
    assert write_counts_csv(counts, path) == 2 * 48 - 1
    again, _ = read_counts_csv(path)
    np.testing.assert_array_equal(again.values, counts.values)
