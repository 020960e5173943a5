"""The public halls (city → district → station) and their materialised statistics:
figures checked against a hand-computed set, suppression below 5, rebuild == incremental
(service and CLI), pages in zh and en reading only the counters, and the citizen's rating
at closing through the portal page (once per case, audited)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from safecity import cli
from safecity.cases import cli as cases_cli
from safecity.cases import halls, portal, service, stats
from safecity.cases import jobs as cases_jobs
from safecity.cases.models import CaseRating, CaseStat
from safecity.cases.schemas import PersonIn
from safecity.orgs import service as orgs
from safecity.platform import jobs
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from tests.cases.conftest import OpenFn, code_sent
from tests.conftest import City
from tests.console.test_pages import assert_csp_clean
from tests.publicguard import CANARIES, assert_no_canary, public_get_routes, seed_canaries

pytestmark = pytest.mark.db

SYSTEM = audit.SYSTEM
DAY = timedelta(days=1)


@dataclass
class Clock:
    now: datetime


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The cases' and timelines' clock, set by the test (stage times are hand-computed)."""
    local = datetime.now(stats.ZONE).replace(day=1) - DAY  # last month
    start = local.replace(day=10, hour=12, minute=0, second=0, microsecond=0)
    c = Clock(start.astimezone(UTC))
    for module in (
        "safecity.cases.service",
        "safecity.cases.workflow",
        "safecity.platform.timeline",
    ):
        monkeypatch.setattr(f"{module}.utcnow", lambda: c.now)
    return c


def _victim() -> PersonIn:
    return PersonIn(role="victim", name=CANARIES.name, phone=CANARIES.phone)


@dataclass
class Scenario:
    t0: datetime
    month: str
    a: list[str] = field(default_factory=list)  # station 0 (district hp)
    b: list[str] = field(default_factory=list)  # station 1 (district hp)
    c: list[str] = field(default_factory=list)  # station 2 (district pd)


def _open(s: Session, station: Any, case_type: str = "theft", **extra: Any) -> str:
    case = service.open_case(
        s,
        principal=SYSTEM,
        source="report",
        case_type=case_type,
        org_id=station.id,
        persons=[_victim()],
        **extra,
    )
    return case.id


def _move(s: Session, case_id: str, name: str, reason: str | None = None) -> None:
    service.transition(session=s, principal=SYSTEM, case_id=case_id, name=name, reason=reason)


def build_scenario(runtime: Runtime, city: City, clock: Clock) -> Scenario:
    """Station 0: six thefts registered after 1..6 days, five investigated 2 days later,
    solved or closed after 4, 4, 4, 6, 6 days, rated 5, 4, 4, 3, 5; a domestic-violence
    case registered after a day; a theft whose victim opted out. Station 1: two thefts.
    Station 2: one theft. All received at the same moment of last month."""
    t0 = clock.now
    sc = Scenario(t0=t0, month=stats.month_of(t0))
    with runtime.sessions.begin() as s:
        sc.a = [_open(s, city.stations[0]) for _ in range(6)]
        sc.a.append(_open(s, city.stations[0], "domestic_violence"))
        sc.a.append(_open(s, city.stations[0], victim_opt_out=True))
        sc.b = [_open(s, city.stations[1]) for _ in range(2)]
        sc.c = [_open(s, city.stations[2])]
    for i, case_id in enumerate(sc.a[:6], start=1):
        clock.now = t0 + i * DAY
        with runtime.sessions.begin() as s:
            _move(s, case_id, "register")
        if i <= 5:
            clock.now = t0 + (i + 2) * DAY
            with runtime.sessions.begin() as s:
                _move(s, case_id, "investigate")
            clock.now = t0 + (i + 2 + (4 if i <= 3 else 6)) * DAY
            with runtime.sessions.begin() as s:
                if i == 4:
                    _move(s, case_id, "close", "no further leads")
                else:
                    _move(s, case_id, "solve")
    clock.now = t0 + DAY
    with runtime.sessions.begin() as s:
        _move(s, sc.a[6], "register")
    for case_id, rating in zip(sc.a[:5], (5, 4, 4, 3, 5), strict=True):
        code = code_sent(runtime, case_id)
        assert code is not None
        with runtime.sessions.begin() as s:
            number = service.get_case(session=s, principal=SYSTEM, case_id=case_id).number
            assert portal.rate(s, client="t", number=number, code=code, rating=rating) == "rated"
    clock.now = t0
    return sc


def _hall(runtime: Runtime, org: Any) -> halls.Hall:
    with runtime.sessions() as s:
        return halls.build(s, halls.hall_org(s, org.code))


def _month_row(hall: halls.Hall, month: str) -> halls.Row:
    return next(r for r in hall.months if r.label == month)


# --------------------------------------------------------------------------- figures


def test_figures_match_a_hand_computed_set(runtime: Runtime, city: City, clock: Clock) -> None:
    sc = build_scenario(runtime, city, clock)
    a = _hall(runtime, city.stations[0])
    # received 8; disclosable 7 (the DV case is not), disclosed 6 (the opt-out is not);
    # ratings 5+4+4+3+5 = 21 / 5; stage 1: (1+2+3+4+5+6+1)/7 days; stage 2: 2 days x 5;
    # stage 3: (4+4+4+6+6)/5 days.
    assert a.total == halls.Row("12", "8", "85.7%", "4.2", ("3.1", "2.0", "4.8"))
    assert _month_row(a, sc.month) == halls.Row(
        sc.month, "8", "85.7%", "4.2", ("3.1", "2.0", "4.8")
    )
    assert len(a.months) == 12
    assert [r.received for r in a.months if r.label != sc.month] == ["<5"] * 11
    # District hp = stations 0 and 1: 10 received, 8 of 9 disclosable disclosed.
    hp = _hall(runtime, city.districts[0])
    assert (hp.total.received, hp.total.disclosure) == ("10", "88.9%")
    assert hp.total.stage_days == ("3.1", "2.0", "4.8")
    assert [o.code for o in hp.children] == ["hp-s1", "hp-s2"]
    # The city: 11 received, 9 of 10 disclosed.
    top = _hall(runtime, city.city)
    assert (top.total.received, top.total.disclosure, top.total.satisfaction) == (
        "11",
        "90.0%",
        "4.2",
    )
    assert [o.code for o in top.children] == ["hp", "pd"]
    assert [o.code for o in top.trail] == ["sh"]
    with runtime.sessions() as s:
        raw = stats.read_months(s, org=halls.hall_org(s, "sh"), months=[sc.month])[sc.month]
    assert raw["received"] == 11
    assert raw["s1_sec"] == 22 * 86400
    assert raw["rating_sum"] == 21


def test_small_counts_and_their_rates_are_suppressed(
    runtime: Runtime, city: City, clock: Clock
) -> None:
    build_scenario(runtime, city, clock)
    b = _hall(runtime, city.stations[1])  # two cases
    assert b.total == halls.Row("12", "<5", "<5", "<5", ("<5", "<5", "<5"))
    # A mean over five cases is shown; over four (a base below 5) it is not.
    assert _hall(runtime, city.stations[0]).total.stage_days[2] == "4.8"
    assert halls.ratio_text(16, 4, scale=1, digits=1) == "<5"
    assert halls.ratio_text(20, 5, scale=1, digits=1) == "4.0"
    assert halls.count_text(0) == halls.count_text(4) == "<5"
    assert halls.count_text(5) == "5"


def test_secondary_suppression_never_leaves_one_month_hidden() -> None:
    assert halls.received_column([10, 3, 7, 12]) == ["10", "<5", "<5", "12"]
    assert halls.received_column([10, 3, 2, 12]) == ["10", "<5", "<5", "12"]
    assert halls.received_column([0, 0, 9]) == ["<5", "<5", "9"]
    assert halls.received_column([6, 7]) == ["6", "7"]
    column = halls.received_column([20, 4, 9, 9, 30])
    assert column == ["20", "<5", "<5", "9", "30"]  # the first of the smallest goes too


def test_last_months_are_local_and_twelve() -> None:
    months = halls.last_months(datetime(2026, 1, 31, 17, 0, tzinfo=stats.ZONE).astimezone())
    assert months[-1] == "2026-01"
    assert months[0] == "2025-02"
    assert len(months) == 12
    # 16:30 UTC on 31 December is already January in Shanghai.
    utc = datetime.fromisoformat("2025-12-31T16:30:00+00:00")
    assert stats.month_of(utc) == "2026-01"


# --------------------------------------------------------------------------- rebuild


def _counters(runtime: Runtime) -> dict[stats.Key, int]:
    with runtime.sessions() as s:
        return stats.counters(s)


def test_rebuild_gives_the_incremental_counters(runtime: Runtime, city: City, clock: Clock) -> None:
    sc = build_scenario(runtime, city, clock)
    clock.now = sc.t0 + 20 * DAY
    with runtime.sessions.begin() as s:
        # a transfer, a supervisor hiding a case, an opt-out withdrawn, a not-registered
        # case, a suspended-then-resumed-then-closed case
        service.transfer(
            session=s, principal=SYSTEM, case_id=sc.b[0], org_id=city.stations[2].id, reason="x"
        )
        service.set_disclosure(
            session=s,
            principal=SYSTEM,
            case_id=sc.a[1],
            override=False,
            victim_opt_out=None,
            reason="witness protection",
        )
        service.set_disclosure(
            session=s,
            principal=SYSTEM,
            case_id=sc.a[7],
            override=None,
            victim_opt_out=False,
            reason="victim asked",
        )
        _move(s, sc.b[1], "not_register", "civil matter")
        _move(s, sc.a[5], "investigate")
        _move(s, sc.a[5], "suspend", "no leads")
    clock.now = sc.t0 + 30 * DAY
    with runtime.sessions.begin() as s:
        _move(s, sc.a[5], "resume")
        _move(s, sc.a[5], "close", "done")
    incremental = _counters(runtime)
    with runtime.sessions() as s:
        assert stats.computed(s) == incremental
    with runtime.sessions.begin() as s:
        report = stats.rebuild(s)
    assert report.cases == 11
    assert _counters(runtime) == incremental
    b0 = city.stations[1].id
    assert incremental[(b0, sc.month, "received")] == 1
    assert incremental[(city.stations[2].id, sc.month, "received")] == 2
    a0 = city.stations[0].id
    assert incremental[(a0, sc.month, "disclosed")] == 6  # one hidden, one opt-out withdrawn
    assert incremental[(a0, sc.month, "s2_n")] == 6
    assert incremental[(a0, sc.month, "s3_sec")] == (4 + 4 + 4 + 6 + 6 + 10) * 86400


def test_cli_checks_and_rebuilds(
    runtime: Runtime, city: City, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_scenario(runtime, city, clock)
    monkeypatch.setattr(cases_cli, "_runtime", lambda: runtime)
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["cases", "stats", "check"])
    assert ok.exit_code == 0, ok.output
    assert "counters match" in ok.output
    with runtime.sessions.begin() as s:
        s.execute(update(CaseStat).where(CaseStat.metric == "received").values(value=99))
    bad = runner.invoke(cli.app, ["cases", "stats", "check"])
    assert bad.exit_code == 1
    rebuilt = runner.invoke(cli.app, ["cases", "stats", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "from 11 cases" in rebuilt.output
    assert runner.invoke(cli.app, ["cases", "stats", "check"]).exit_code == 0
    with runtime.sessions() as s:
        audited = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "cases.stats.rebuild")
        )
    assert audited == 1


# --------------------------------------------------------------------------- pages


def test_halls_render_in_both_languages_from_the_counters_only(
    client: TestClient, runtime: Runtime, city: City, clock: Clock
) -> None:
    build_scenario(runtime, city, clock)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        zh = client.get("/portal/halls")
        station = client.get(f"/portal/halls/{city.stations[0].code}")
        small = client.get(f"/portal/halls/{city.stations[1].code}")
        en = client.get(
            f"/portal/halls/{city.districts[0].code}", headers={"Accept-Language": "en"}
        )
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)
    for page in (zh, station, small, en):
        assert page.status_code == 200, page.text
        assert_csp_clean(page.text)
        assert_no_canary(page, where="halls")
        assert 'data-note="hidden-types"' in page.text
    reads = " ".join(statements).lower()
    assert "case_stats" in reads
    for table in ("from cases", "join cases", "case_stat_facts", "timeline_entries"):
        assert table not in reads, f"a hall page read {table}"
    assert "上海市" in zh.text
    assert "公开率" in zh.text
    assert 'data-figure="received">11<' in zh.text
    assert 'href="/portal/halls/hp"' in zh.text  # a district of the city
    assert 'data-figure="received">8<' in station.text
    assert 'data-figure="disclosure">85.7%<' in station.text
    assert 'aria-current="page">hp派出所1<' in station.text
    assert 'data-figure="received">&lt;5<' in small.text
    assert "Disclosure rate" in en.text
    assert "District hp" in en.text
    assert 'href="/portal/halls/hp-s2"' in en.text  # its stations
    assert 'lang="en"' in en.text


def test_picker_redirects_and_unknown_halls_are_404(client: TestClient, city: City) -> None:
    picked = client.get("/portal/halls", params={"org": "pd-s1"}, follow_redirects=False)
    assert picked.status_code == 303
    assert picked.headers["location"] == "/portal/halls/pd-s1"
    assert client.get("/portal/halls/no-such-org").status_code == 404
    assert client.get(f"/portal/halls/{city.department.code}").status_code == 404
    assert client.get("/portal/halls", params={"org": "nope"}).status_code == 404
    assert client.get("/portal/halls", params={"org": "<script>"}).status_code == 422
    home = client.get("/portal")
    assert 'href="/portal/halls"' in home.text


# --------------------------------------------------------------------------- rating


def test_citizen_rates_a_closed_case_once_from_the_portal(
    client: TestClient, runtime: Runtime, open_case: OpenFn, make_actor: Any, city: City
) -> None:
    case = open_case(0)
    assert case.code is not None
    form = {"number": case.number, "code": case.code, "rating": "4"}
    early = client.post("/portal/rating", data=form)
    assert early.status_code == 200
    assert 'data-rated="not-closed"' in early.text
    boss = make_actor("supervisor", city.stations[0])
    client.post(f"/api/cases/{case.id}/transitions/investigate", headers=case.headers)
    solved = client.post(f"/api/cases/{case.id}/transitions/solve", headers=boss.headers)
    assert solved.status_code == 200
    page = client.post("/portal", data={"number": case.number, "code": case.code})
    assert 'data-form="rating"' in page.text
    assert_csp_clean(page.text)
    rated = client.post("/portal/rating", data=form)
    assert rated.status_code == 200
    assert "data-rated>" in rated.text
    assert 'data-rating="4"' in rated.text
    assert 'data-form="rating"' not in rated.text
    assert_no_canary(rated, where="/portal/rating")
    again = client.post("/portal/rating", data={**form, "rating": "1"})
    assert 'data-rated="already"' in again.text
    wrong = client.post("/portal/rating", data={**form, "code": "AAAAAAAA"})
    assert wrong.status_code == 404
    assert "data-miss" in wrong.text
    assert client.post("/portal/rating", data={**form, "rating": "9"}).status_code == 422
    with runtime.sessions() as s:
        assert s.get(CaseRating, case.id) is not None
        assert s.get(CaseRating, case.id).rating == 4  # type: ignore[union-attr]
        audited = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "cases.rating")
        )
        counted = stats.counters(s)
    assert audited == 1
    month = stats.month_of(datetime.now(stats.ZONE))
    assert counted[(city.stations[0].id, month, "rating_sum")] == 4


# --------------------------------------------------------------------------- public guard


def test_halls_are_public_routes_the_canary_walk_fills(
    runtime: Runtime, client: TestClient
) -> None:
    """The platform walk (tests/test_publicguard.py) GETs every public route with the
    seeded values; the halls are among them, filled with the canary case's org codes."""
    seeded = seed_canaries(runtime)
    paths = {r.path for r in public_get_routes(client.app)}  # type: ignore[arg-type]
    assert {"/portal/halls", "/portal/halls/{org_code}"} <= paths
    codes = seeded.path_values["org_code"]
    assert len(codes) == 3  # city, district, station of the canary case
    for code in codes:
        for lang in ("zh", "en"):
            page = client.get(f"/portal/halls/{code}", headers={"Accept-Language": lang})
            assert page.status_code == 200
            assert_no_canary(page, where=f"/portal/halls/{code}")
    assert_no_canary(client.get("/portal/halls"), where="/portal/halls")


def test_an_org_move_is_refiled_by_rebuild(runtime: Runtime, city: City, clock: Clock) -> None:
    """Counters roll up along the tree as it was; after a station moves to another
    district, the daily reconciliation job sees the difference and rebuilds."""
    build_scenario(runtime, city, clock)
    with runtime.sessions.begin() as s:
        orgs.update(session=s, org_id=city.stations[1].id, parent_id=city.districts[1].id)
    with runtime.sessions() as s:
        assert stats.computed(s) != stats.counters(s)
    scheduler = jobs.Scheduler(runtime)
    outcome = scheduler.run_now(cases_jobs.RECONCILE)  # the daily reconciliation
    assert outcome.status == "succeeded"
    assert outcome.items
    assert scheduler.run_now(cases_jobs.RECONCILE).items == 0  # nothing left to re-file
    assert _hall(runtime, city.districts[0]).total.received == "8"  # station 0 only
    hp2 = _hall(runtime, city.districts[1])
    assert hp2.total.received == "<5"  # station 1's two cases and station 2's one
    with runtime.sessions() as s:
        month = next(iter({k[1] for k in stats.counters(s)}))
        pd = stats.read_months(s, org=halls.hall_org(s, "pd"), months=[month])[month]
    assert pd["received"] == 3
