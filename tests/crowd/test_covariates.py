"""Covariate feeds and the events calendar: good files, bad rows with their line numbers
(nothing stored), the citation rule, upsert, the API's permissions, the CLI and a property
test of the row parser."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from safecity import cli
from safecity.crowd import covariates, covariates_cli
from safecity.crowd.models import CrowdCovariate, CrowdEvent
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from tests.conftest import City
from tests.crowd.test_counts import make_hotspot

pytestmark = pytest.mark.db

NOW = datetime(2026, 10, 27, 12, 30, tzinfo=UTC)
CALENDAR_FILE = (
    Path(__file__).parents[2] / "src" / "safecity" / "crowd" / "data" / "events_bund.yaml"
)

GOOD = {
    "air": "scope,hour,arrivals\nSH,2026-10-01T08:00:00+08:00,5200\nbund,2026-10-01T01:00:00Z,0\n",
    "rail": "scope,hour,arrivals,source\nCN-SH,2026-10-01T09:00:00+08:00,48000,12306 export\n",
    "hotel": "scope,day,occupancy\nSH,2026-10-01T00:00:00+08:00,0.93\n"
    "SH,2026-10-02T00:00:00+08:00,1\n",
    "temp_c": "scope,hour,temp_c\nSH,2026-10-01T08:00:00+08:00,-3.5\n"
    "SH,2026-10-01T09:00:00+08:00,24\n",
    "rain_mm": "scope,hour,rain_mm\nbund,2026-10-01T08:00:00+08:00,12.4\n",
}


@pytest.fixture
def bund(session: Session, city: City) -> str:
    make_hotspot(session, city.stations[0], "bund", timezone="Asia/Shanghai")
    make_hotspot(session, city.stations[0], "yuyuan", timezone="Asia/Shanghai")
    session.commit()
    return "bund"


def load(session: Session, kind: str, text: str, name: str = "feed.csv") -> Any:
    rows, lines = covariates_cli.read_rows(text, name=name, kind=kind)
    return covariates.record_covariates(
        session,
        principal=audit.SYSTEM,
        kind=kind,
        rows=rows,
        now=NOW,
        source=name,
        where=[f"{name} line {n}" for n in lines],
    )


def stored(session: Session) -> list[tuple[str, str, datetime, float, str]]:
    rows = session.scalars(select(CrowdCovariate).order_by(CrowdCovariate.at))
    return [(r.kind, r.scope, r.at, r.value, r.source) for r in rows]


# --------------------------------------------------------------------------- covariates


@pytest.mark.parametrize("kind", covariates.KINDS)
def test_each_feeds_good_file_is_stored_in_utc(session: Session, bund: str, kind: str) -> None:
    report = load(session, kind, GOOD[kind])
    rows = stored(session)
    assert report.accepted == report.created == len(rows) > 0
    assert {r[0] for r in rows} == {kind}
    if kind == "air":
        assert rows == [
            ("air", "SH", datetime(2026, 10, 1, 0, tzinfo=UTC), 5200.0, "feed.csv"),
            ("air", "bund", datetime(2026, 10, 1, 1, tzinfo=UTC), 0.0, "feed.csv"),
        ]
    if kind == "rail":
        assert rows[0][1:] == (
            "CN-SH",
            datetime(2026, 10, 1, 1, tzinfo=UTC),
            48000.0,
            "12306 export",
        )
    if kind == "hotel":  # the local midnight of each day
        assert [r[2] for r in rows] == [
            datetime(2026, 9, 30, 16, tzinfo=UTC),
            datetime(2026, 10, 1, 16, tzinfo=UTC),
        ]
    session.commit()  # the audit record is written at commit
    audited = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "crowd.covariates.record")
    ).all()
    assert len(audited) == 1


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        (
            "air",
            "scope,hour,arrivals\nSH,2026-10-01T08:00:00+08:00,10\nSH,2026-10-01T09:00:00+08:00,-1\n",
            "feed.csv line 3: arrivals -1 is out of range",
        ),
        (
            "rail",
            "scope,hour,arrivals\nSH,2026-10-01T08:00:00+08:00,1000000\n",
            "feed.csv line 2: arrivals 1e+06 is out of range (0 ≤ value < 1e+06",
        ),
        (
            "hotel",
            "scope,day,occupancy\nSH,2026-10-01T00:00:00+08:00,0.5\n\nSH,2026-10-02T00:00:00+08:00,93\n",
            "feed.csv line 4: occupancy 93 is out of range",
        ),
        (
            "hotel",
            "scope,day,occupancy\nSH,2026-10-01T12:00:00+08:00,0.5\n",
            "feed.csv line 2: day '2026-10-01T12:00:00+08:00' must be a local midnight",
        ),
        (
            "temp_c",
            "scope,hour,temp_c\nSH,2026-10-01T08:00:00+08:00,71\n",
            "feed.csv line 2: temp_c 71 is out of range (-40 ≤ value ≤ 60 °C)",
        ),
        (
            "rain_mm",
            "scope,hour,rain_mm\nSH,2026-10-01T08:00:00+08:00,nan\n",
            "feed.csv line 2: rain_mm nan is not a finite number",
        ),
        (
            "rain_mm",
            "scope,hour,rain_mm\nSH,2026-10-01T08:00:00+08:00,lots\n",
            "feed.csv line 2: rain_mm 'lots' is not a number",
        ),
        (
            "temp_c",
            "scope,hour,temp_c\nSH,2026-10-01T08:00:00,20\n",
            "feed.csv line 2: hour '2026-10-01T08:00:00' has no UTC offset",
        ),
        (
            "temp_c",
            "scope,hour,temp_c\nSH,2026-10-01T08:30:00+08:00,20\n",
            "feed.csv line 2: hour '2026-10-01T08:30:00+08:00' is not the start of a UTC hour",
        ),
        (
            "air",
            "scope,hour,arrivals\natlantis,2026-10-01T08:00:00+08:00,3\n",
            "feed.csv line 2: unknown scope 'atlantis'",
        ),
        (
            "air",
            "scope,hour,arrivals\nSH,2029-10-01T08:00:00+08:00,3\n",
            "feed.csv line 2: hour 2029-10-01T00:00:00+00:00 is more than 400 days ahead",
        ),
        (
            "air",
            "scope,hour,arrivals\nSH,2026-10-01T08:00:00+08:00\n",
            "feed.csv line 2: expected 3 fields",
        ),
        ("air", "scope,hour,temp_c\n", "feed.csv: header for air must be scope,hour,arrivals"),
        ("hotel", "scope,day,occupancy\n", "feed.csv: no data rows"),
    ],
)
def test_a_bad_row_refuses_the_file_with_its_line(
    session: Session, bund: str, kind: str, body: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        load(session, kind, body)
    assert info.value.detail.startswith(message), info.value.detail
    session.rollback()
    assert stored(session) == []


def test_the_api_row_error_carries_its_index(session: Session, bund: str) -> None:
    rows = [{"scope": "SH", "hour": "2026-10-01T08:00:00+08:00", "arrivals": 1}, {"scope": "SH"}]
    with pytest.raises(InvalidInput) as info:
        covariates.record_covariates(
            session, principal=audit.SYSTEM, kind="air", rows=rows, now=NOW
        )
    assert info.value.detail == "row 1: hour is missing"
    assert info.value.extra["index"] == 1
    with pytest.raises(InvalidInput, match="unknown field 'temp_c' for kind air"):
        covariates.record_covariates(
            session,
            principal=audit.SYSTEM,
            kind="air",
            rows=[{"scope": "SH", "hour": "2026-10-01T08:00:00Z", "arrivals": 1, "temp_c": 3}],
            now=NOW,
        )
    with pytest.raises(InvalidInput, match="kind must be one of"):
        covariates.record_covariates(session, principal=audit.SYSTEM, kind="snow", rows=rows)
    with pytest.raises(PayloadTooLarge):
        covariates.record_covariates(
            session, principal=audit.SYSTEM, kind="air", rows=[rows[0]] * 5001, now=NOW
        )


def test_upsert_is_idempotent_and_latest_wins(session: Session, bund: str) -> None:
    first = load(session, "temp_c", GOOD["temp_c"])
    session.commit()
    again = load(session, "temp_c", GOOD["temp_c"])
    session.commit()
    assert (first.created, first.updated) == (2, 0)
    assert (again.created, again.updated) == (0, 2)
    assert len(stored(session)) == 2
    fixed = load(
        session,
        "temp_c",
        "scope,hour,temp_c\nSH,2026-10-01T08:00:00+08:00,1\nSH,2026-10-01T00:00:00Z,2\n",
    )
    session.commit()
    assert fixed.duplicates == 1  # the same UTC hour twice: the later row wins
    assert [r[3] for r in stored(session)] == [2.0, 24.0]


# --------------------------------------------------------------------------- events calendar


def entry(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "code": "light-show-2026-10-01",
        "name": "National Day light show",
        "kind": "light_show",
        "hotspots": ["bund"],
        "starts_at": "2026-10-01T19:00:00+08:00",
        "ends_at": "2026-10-01T21:00:00+08:00",
        "attendance": 50000,
        "source_url": "https://organiser.example/programme",
        "source_title": "Organiser: programme",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def calendar_yaml(*entries: dict[str, Any]) -> str:
    return "# test calendar\n" + yaml.safe_dump({"events": list(entries)}, sort_keys=False)


def import_yaml(session: Session, text: str) -> covariates.CalendarReport:
    document, lines = covariates.parse_calendar_yaml(text, name="cal.yaml")
    return covariates.import_calendar(
        session, principal=audit.SYSTEM, document=document, name="cal.yaml", lines=lines, now=NOW
    )


def test_a_cited_calendar_is_imported_and_reimport_changes_nothing(
    session: Session, bund: str
) -> None:
    text = calendar_yaml(entry(), entry(code="match-1", kind="match", hotspots=["yuyuan"]))
    report = import_yaml(session, text)
    session.commit()
    assert (report.total, report.created) == (2, 2)
    assert import_yaml(session, text).unchanged == 2
    moved = import_yaml(session, calendar_yaml(entry(ends_at="2026-10-01T22:00:00+08:00")))
    session.commit()
    assert (moved.updated, moved.created) == (1, 0)
    event = session.scalar(select(CrowdEvent).where(CrowdEvent.code == "light-show-2026-10-01"))
    assert event is not None
    assert (event.starts_at, event.ends_at) == (
        datetime(2026, 10, 1, 11, tzinfo=UTC),
        datetime(2026, 10, 1, 14, tzinfo=UTC),
    )
    assert event.source_url == "https://organiser.example/programme"
    assert session.scalar(select(func.count()).select_from(CrowdEvent)) == 2  # none deleted


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (entry(code="x", source_url=None), "cal.yaml events[1] (line 13): every entry must cite"),
        (entry(code="x", source_title=""), "every entry must cite a public source"),
        (entry(code="x", source_url="ftp://example.org/x"), "must be an http or https address"),
        (entry(code="x", source_url="see the poster"), "must be an http or https address"),
        (entry(code="x", ends_at="2026-10-01T19:00:00+08:00"), "ends_at must be after starts_at"),
        (entry(code="x", ends_at="2026-10-01T18:00:00+08:00"), "ends_at must be after starts_at"),
        (entry(code="x", hotspots=["atlantis"]), "events[1] (line 13): unknown hotspot 'atlantis'"),
        (entry(), "code 'light-show-2026-10-01' is already used by events[0]"),
        (entry(code="x", kind="riot"), "kind must be one of concert, light_show"),
        (
            entry(code="x", starts_at="2026-10-01T19:00:00"),
            "starts_at '2026-10-01T19:00:00' has no UTC offset",
        ),
        (entry(code="x", attendance=-5), "attendance must be a whole number"),
        (entry(code="x", venue="Bund"), "unknown field 'venue'"),
    ],
)
def test_a_bad_calendar_entry_refuses_the_file(
    session: Session, bund: str, second: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        import_yaml(session, calendar_yaml(entry(), second))
    assert message in info.value.detail, info.value.detail
    assert info.value.extra["index"] == 1
    session.rollback()
    assert session.scalar(select(func.count()).select_from(CrowdEvent)) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("events:\n  - code: a\n    name: [unclosed\n", "cal.yaml line 4 column 1: malformed YAML"),
        ("events: [\n", "malformed YAML"),
        ("events:\n\t- code: a\n", "cal.yaml line 2 column 1: malformed YAML"),
        ("- code: a\n", "the calendar must be a mapping with one key, events"),
        ("events: {code: a}\n", "events must be a list"),
        ("events:\n  - just text\n", "cal.yaml events[0] (line 2): must be a mapping"),
        ("", "the calendar must be a mapping"),
    ],
)
def test_a_malformed_calendar_is_one_clear_error(
    session: Session, bund: str, text: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        import_yaml(session, text)
    assert info.value.detail.startswith(message) or message in info.value.detail, info.value.detail
    assert len(info.value.detail.splitlines()) == 1


def test_the_committed_calendar_is_valid(session: Session, bund: str) -> None:
    text = CALENDAR_FILE.read_text(encoding="utf-8")
    report = import_yaml(session, text)
    assert report.total == len(yaml.safe_load(text)["events"])


def test_events_between_overlaps_and_filters_by_hotspot(session: Session, bund: str) -> None:
    import_yaml(
        session,
        calendar_yaml(
            entry(code="a"),
            entry(
                code="b",
                hotspots=["yuyuan"],
                starts_at="2026-10-02T10:00:00+08:00",
                ends_at="2026-10-02T12:00:00+08:00",
            ),
        ),
    )
    day = datetime(2026, 10, 1, 16, tzinfo=UTC)  # 2 October, local midnight
    assert [
        e.code for e in covariates.events_between(session, start=day - timedelta(days=1), end=day)
    ] == ["a"]
    both = covariates.events_between(
        session, start=day - timedelta(days=1), end=day + timedelta(days=1)
    )
    assert [e.code for e in both] == ["a", "b"]
    only = covariates.events_between(
        session, start=day - timedelta(days=1), end=day + timedelta(days=1), hotspots=["yuyuan"]
    )
    assert [e.code for e in only] == ["b"]
    # an event ending exactly when the window starts does not overlap it
    end_a = datetime(2026, 10, 1, 13, tzinfo=UTC)
    assert covariates.events_between(session, start=end_a, end=end_a + timedelta(hours=1)) == []
    with pytest.raises(InvalidInput):
        covariates.events_between(session, start=datetime(2026, 10, 1), end=day)


# --------------------------------------------------------------------------- API


def test_api_permissions_and_problems(
    client: TestClient, runtime: Runtime, city: City, make_actor: Any
) -> None:
    with runtime.sessions.begin() as s:
        make_hotspot(s, city.stations[0], "bund")
    device = make_actor("device", city.districts[0], kind="device")
    officer = make_actor("officer", city.stations[0])
    stranger = make_actor("officer", city.stations[-1])
    supervisor = make_actor("supervisor", city.stations[0])
    rows = [{"scope": "SH", "hour": "2026-10-01T08:00:00+08:00", "arrivals": 4200}]
    url = "/api/crowd/covariates/air"
    assert client.post(url, json=rows).status_code == 401
    assert client.post(url, json=rows, headers=officer.headers).status_code == 403
    r = client.post(url, json=rows, headers=device.headers)
    assert r.status_code == 202, r.text
    assert r.json()["created"] == 1
    bad = client.post(url, json=[*rows, {"scope": "SH", "arrivals": -1}], headers=device.headers)
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["index"] == 1
    assert (
        client.post("/api/crowd/covariates/snow", json=rows, headers=device.headers).status_code
        == 422
    )

    calendar = {"events": [entry(hotspots=["bund"])]}
    assert (
        client.post("/api/crowd/events", json=calendar, headers=officer.headers).status_code == 403
    )
    r = client.post("/api/crowd/events", json=calendar, headers=supervisor.headers)
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 1
    refused = client.post(
        "/api/crowd/events", json={"events": [entry(source_url=None)]}, headers=supervisor.headers
    )
    assert refused.status_code == 422
    assert "every entry must cite a public source" in refused.json()["detail"]

    window = {"from": "2026-10-01T00:00:00+08:00", "to": "2026-10-02T00:00:00+08:00"}
    assert client.get("/api/crowd/events", params=window).status_code == 401
    got = client.get("/api/crowd/events", params=window, headers=officer.headers)
    assert got.status_code == 200, got.text
    assert [e["code"] for e in got.json()] == ["light-show-2026-10-01"]
    assert got.json()[0]["source_title"] == "Organiser: programme"
    hidden = client.get("/api/crowd/events", params=window, headers=stranger.headers)
    assert hidden.status_code == 200
    assert hidden.json() == []  # the hotspot belongs to another station
    naive = client.get(
        "/api/crowd/events", params={"from": "2026-10-01T00:00:00"}, headers=officer.headers
    )
    assert naive.status_code == 422
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CrowdCovariate)) == 1


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def use_test_db(runtime: Runtime, city: City, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    with runtime.sessions.begin() as s:
        make_hotspot(s, city.stations[0], "bund", timezone="Asia/Shanghai")
    monkeypatch.setattr(covariates_cli, "_runtime", lambda: runtime)
    return runtime


def test_cli_imports_a_feed_and_a_calendar(use_test_db: Runtime, tmp_path: Path) -> None:
    feed = tmp_path / "weather.csv"
    feed.write_text(GOOD["temp_c"], encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["crowd", "covariates", "import", "temp_c", str(feed)])
    assert result.exit_code == 0, result.output
    assert "imported 2 temp_c value(s) for 1 scope(s) from weather.csv: 2 new" in result.output
    cal = tmp_path / "cal.yaml"
    cal.write_text(calendar_yaml(entry()), encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["crowd", "events", "import", str(cal)])
    assert result.exit_code == 0, result.output
    assert "imported 1 event(s) from cal.yaml: 1 created" in result.output
    with use_test_db.sessions() as s:
        assert {r.source for r in s.scalars(select(CrowdCovariate))} == {"weather.csv"}
        assert s.scalar(select(func.count()).select_from(CrowdEvent)) == 1


@pytest.mark.parametrize(
    ("argv", "name", "body", "message"),
    [
        (
            ["covariates", "import", "hotel"],
            "hotel.csv",
            "scope,day,occupancy\nSH,2026-10-01T00:00:00+08:00,0.5\nSH,2026-10-02T00:00:00+08:00,1.5\n",
            "error: hotel.csv line 3: occupancy 1.5 is out of range",
        ),
        (
            ["covariates", "import", "snow"],
            "snow.csv",
            "scope,hour,snow\n",
            "error: KIND must be one of air, rail, hotel, temp_c, rain_mm",
        ),
        (
            ["events", "import"],
            "cal.yaml",
            "events:\n  - code: a\n    name: [oops\n",
            "error: cal.yaml line 4 column 1: malformed YAML",
        ),
        (
            ["events", "import"],
            "cal.yaml",
            calendar_yaml(entry(source_url=None)),
            "error: cal.yaml events[0] (line 3): every entry must cite a public source",
        ),
    ],
)
def test_cli_bad_files_end_in_one_line_and_store_nothing(
    use_test_db: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    name: str,
    body: str,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["safecity", "crowd", *argv, str(path)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert err.startswith(message), err
    assert len(err.splitlines()) == 1
    with use_test_db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(CrowdCovariate)) == 0
        assert s.scalar(select(func.count()).select_from(CrowdEvent)) == 0


# --------------------------------------------------------------------------- properties

_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.timezones()
    ),
    st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.timezones()
    ).map(lambda d: d.isoformat()),
    st.lists(st.integers(), max_size=2),
)
_ROW = st.one_of(
    st.dictionaries(
        st.sampled_from(
            ["scope", "hour", "day", "arrivals", "occupancy", "temp_c", "rain_mm", "source", "mac"]
        ),
        _VALUE,
        max_size=6,
    ),
    _VALUE,
)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([*covariates.KINDS, "snow"]), data=_ROW)
def test_the_row_parser_only_ever_raises_invalid_input(kind: str, data: Any) -> None:
    try:
        row = covariates.parse_row(kind, data, where="row 0", now=NOW)
    except InvalidInput as exc:
        detail = exc.detail
    else:
        detail = ""
        feed = covariates.FEEDS[kind]
        assert feed.low <= row.value <= feed.high
        assert row.at.tzinfo is not None
    assert detail or kind in covariates.FEEDS
