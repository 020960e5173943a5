"""The person index in the product: case persons in, a model trained, new records scored,
obvious duplicates auto-linked, borderline pairs queued, rejected pairs left alone."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.cases.models import Case, CasePerson
from safecity.cases.service import LinkablePerson, persons_for_linkage
from safecity.linkage import idcard, index
from safecity.linkage import person_index as pi
from safecity.linkage.models import LinkChange, LinkModel, LinkPair, LinkRecord
from safecity.platform import jobs
from safecity.platform.db import new_id, utcnow
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from safecity.settings import Settings

pytestmark = pytest.mark.db

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国文红玉兰春晓"
REGIONS = ["110105", "310104", "440305", "510107", "330106"]
STREETS = ["中山路", "人民路", "解放路"]
SEED, DUPS, BORDER = 10, 40, 30


def _synthetic() -> tuple[list[dict[str, str]], dict[str, str]]:
    """240 people, 40 messy duplicates (same ID number mostly) and 30 borderline look-alikes
    (no ID number); answers the rows and, per planted record, the original it copies."""
    rng = random.Random(SEED)

    def born() -> dt.date:
        return dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))

    def phone() -> str:
        return f"1{rng.randrange(3, 9)}{rng.randrange(10**9):09d}"

    base = [
        {
            "key": f"p{i}",
            "name": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(2)),
            "phone": phone(),
            "id_number": idcard.make(rng.choice(REGIONS), born(), rng.randrange(1000)),
            "address": f"上海市{rng.choice(STREETS)}{rng.randrange(1, 300)}号",
        }
        for i in range(240)
    ]
    rows, origin = list(base), {}
    for i in range(DUPS):
        d = dict(base[i], key=f"t{i}", phone="+86 " + base[i]["phone"])
        roll = i % 5
        if roll == 0:
            d["name"] = d["name"][:2] + rng.choice(GIVEN)  # a typo in the given name
        elif roll == 1:
            d["address"] = ""
        elif roll == 2:
            d["phone"] = d["phone"][:-1] + str((int(d["phone"][-1]) + 1) % 10)
        elif roll == 3:
            d["address"] = f"上海市人民路{rng.randrange(1, 300)}号"
        else:
            d["phone"] = phone()
        if i % 8 == 7:
            d["id_number"] = idcard.make("310104", born(), rng.randrange(1000))
        rows.append(d)
        origin[d["key"]] = base[i]["key"]
    for i in range(DUPS, DUPS + BORDER):
        d = dict(base[i], key=f"b{i}", id_number="")
        kind = i % 3
        if kind == 0:
            d["phone"], d["address"] = "", "北京市某路1号"
        elif kind == 1:
            d["phone"] = ""
        else:
            d["name"], d["address"] = d["name"][:2] + rng.choice(GIVEN), "北京市某路1号"
        rows.append(d)
        origin[d["key"]] = base[i]["key"]
    return rows, origin


ROWS, ORIGIN = _synthetic()


@pytest.fixture(scope="module")
def model_doc() -> str:
    """One model trained on the synthetic persons (once per module: EM takes seconds)."""
    now = utcnow()
    fields = [
        index.canonical(
            LinkablePerson(
                id=r["key"],
                org_id="x",
                role="victim",
                name=r["name"],
                phone=r["phone"],
                id_number=r["id_number"],
                address=r["address"],
                created_at=now,
            )
        )
        for r in ROWS
    ]
    return index.train_on(fields, thresholds=pi.Thresholds()).to_json()


def _add_persons(session: Session, org_id: str, rows: list[dict[str, str]]) -> dict[str, str]:
    """Case persons inserted through the cases models (test setup only): key -> person id."""
    case = Case(
        number=new_id()[:12], org_id=org_id, case_type="theft", state="registered", source="call"
    )
    session.add(case)
    session.flush()
    ids = {}
    for n, r in enumerate(rows):
        person = CasePerson(
            case_id=case.id,
            role=("victim", "suspect", "witness")[n % 3],
            name=r["name"],
            phone=r["phone"],
            id_number=r["id_number"],
            address=r["address"],
        )
        session.add(person)
        session.flush()
        ids[r["key"]] = person.id
    return ids


def _activate(session: Session, document: str) -> LinkModel:
    import hashlib

    row = LinkModel(
        version="test-model",
        document=document,
        sha256=hashlib.sha256(document.encode("utf-8")).hexdigest(),
        auto_link=0.99,
        review=0.5,
        active=True,
    )
    session.add(row)
    session.flush()
    return row


def _records(session: Session, ids: dict[str, str]) -> dict[str, LinkRecord]:
    by_source = {
        r.source_id: r
        for r in session.scalars(select(LinkRecord).where(LinkRecord.source == "cases.person"))
    }
    return {key: by_source[pid] for key, pid in ids.items()}


def _audits(session: Session, action: str) -> list[AuditEntry]:
    return [e for e in audit.pending_records(session) if e.action == action]


# ------------------------------------------------------------------------------- tests


def test_canonical_fields_of_a_case_person() -> None:
    number = idcard.make("310104", dt.date(1985, 3, 9), 123)
    fields = index.canonical(
        LinkablePerson(
            id="x",
            org_id="o",
            role="suspect",
            name="欧阳 小明",
            phone="+86 138-0013-8000",
            id_number=number.lower(),
            address=" 上海市  中山路1号 ",
            created_at=utcnow(),
        )
    )
    assert (fields["surname"], fields["given_name"]) == ("欧阳", "小明")
    assert (fields["dob"], fields["sex"], fields["id_number"]) == ("1985-03-09", "m", number)
    assert fields["phone"] == "13800138000"
    assert fields["address"] == "上海市 中山路1号"
    bad = index.canonical(
        LinkablePerson("y", "o", "victim", "John Smith", "", number[:-1] + "0", "", utcnow())
    )
    assert bad["id_number"] is None
    assert bad["dob"] is None
    assert (bad["given_name"], bad["surname"]) == ("john", "smith")


def test_ingest_is_idempotent_and_scoped(session: Session, city: Any) -> None:
    ids = _add_persons(session, city.stations[0].id, ROWS[:30])
    other = _add_persons(session, city.stations[2].id, ROWS[30:35])
    assert len(persons_for_linkage(session, since=None, limit=1000)) == 35
    assert index.ingest_cases(session, principal=audit.SYSTEM, limit=7) == 35  # paged
    assert index.ingest_cases(session, principal=audit.SYSTEM) == 0
    records = _records(session, {**ids, **other})
    assert len({r.person_id for r in records.values()}) == 35  # one master person each
    assert records["p0"].org_id == city.stations[0].id
    assert records["p0"].fields["id_number"] == ROWS[0]["id_number"]
    # a changed source record is updated and scored again
    records["p1"].scored_with = "some-model"
    person = session.get(CasePerson, ids["p1"])
    assert person is not None
    person.phone = "13900000000"
    assert index.ingest_cases(session, principal=audit.SYSTEM) == 1
    assert records["p1"].fields["phone"] == "13900000000"
    assert records["p1"].scored_with is None
    details = [e.detail for e in _audits(session, "linkage.records.ingest")]
    assert details[0]["changed"] == 35
    assert details[1]["changed"] == 0


def test_train_refuses_too_few_records(session: Session, city: Any, settings: Settings) -> None:
    _add_persons(session, city.stations[0].id, ROWS[:20])
    index.ingest_cases(session, principal=audit.SYSTEM)
    with pytest.raises(InvalidInput, match=f"{index.MIN_TRAIN_RECORDS} needed, 20 present"):
        index.train_model(session, principal=audit.SYSTEM, settings=settings)
    assert session.scalar(select(func.count()).select_from(LinkModel)) == 0


def test_run_without_a_model_is_refused(session: Session, settings: Settings) -> None:
    with pytest.raises(NotFound, match="train one first"):
        index.run(session, principal=audit.SYSTEM, settings=settings)


def test_run_links_queues_skips_rejected_and_is_incremental(
    session: Session, city: Any, settings: Settings, model_doc: str
) -> None:
    half = len(ROWS) // 2
    ids = _add_persons(session, city.stations[0].id, ROWS[:200])
    ids |= _add_persons(session, city.stations[1].id, ROWS[200:])
    index.ingest_cases(session, principal=audit.SYSTEM)
    model = _activate(session, model_doc)
    records = _records(session, ids)
    # an analyst rejected one obvious duplicate earlier: never linked nor queued again
    a, b = sorted((records["p1"].id, records["t1"].id))
    session.add(
        LinkPair(record_a=a, record_b=b, probability=1.0, model_id=model.id, state="rejected")
    )
    session.flush()

    report = index.run(session, principal=audit.SYSTEM, settings=settings)
    assert report.scored == len(ROWS) > half
    assert report.skipped_rejected == 1
    assert report.auto_linked >= 30
    assert report.queued >= 10
    assert report.auto_linked + report.queued + report.skipped_rejected <= report.candidate_pairs
    assert records["p1"].person_id != records["t1"].person_id
    assert records["p0"].person_id == records["t0"].person_id  # name typo, same ID number
    assert records["p2"].person_id == records["t2"].person_id
    changes = list(session.scalars(select(LinkChange).where(LinkChange.kind == "auto_link")))
    assert len(changes) == report.auto_linked
    pending = list(session.scalars(select(LinkPair).where(LinkPair.state == "pending")))
    assert len(pending) == report.queued
    assert all(0.5 <= p.probability < 0.99 for p in pending)
    assert all(p.record_a < p.record_b for p in pending)
    assert any(p.contributions for p in pending)
    assert "surname" in pending[0].contributions
    border = {records[k].id for k in ORIGIN if k.startswith("b")}
    assert ({p.record_a for p in pending} | {p.record_b for p in pending}) & border
    assert [e.detail["queued"] for e in _audits(session, "linkage.index.run")] == [report.queued]

    again = index.run(session, principal=audit.SYSTEM, settings=settings)
    assert (again.scored, again.auto_linked, again.queued) == (0, 0, 0)

    # a new record: scored against the whole index, linked to its original
    late = dict(ROWS[5], key="late", phone="")
    late_ids = _add_persons(session, city.stations[3].id, [late])
    assert index.ingest_cases(session, principal=audit.SYSTEM) == 1
    third = index.run(session, principal=audit.SYSTEM, settings=settings)
    assert third.scored == 1
    assert third.auto_linked == 1
    late_record = _records(session, late_ids)["late"]
    assert late_record.person_id == records["p5"].person_id
    # every auto-link keeps its pair as "linked"; queued pairs are one row each
    assert session.scalar(select(func.count()).select_from(LinkPair)) == (
        report.queued + report.auto_linked + 1 + third.auto_linked
    )

    # an analyst undoes the late auto-link: its pair turns "rejected", and a rescore (a new
    # model) links it neither through that pair nor through another record of the person
    # it was split from (late~p5 rejected, late~t5 kept apart too)
    from safecity.linkage import persons

    change = next(
        c
        for c in session.scalars(select(LinkChange).where(LinkChange.kind == "auto_link"))
        if late_record.id in c.records or records["p5"].id in c.records
    )
    assert change is not None
    persons.unmerge(session, principal=audit.SYSTEM, change_id=change.id, reason="two people")
    assert late_record.person_id != records["p5"].person_id
    late_record.scored_with = None
    fourth = index.run(session, principal=audit.SYSTEM, settings=settings)
    assert (fourth.scored, fourth.auto_linked, fourth.queued) == (1, 0, 0)
    assert fourth.skipped_rejected == 2
    assert late_record.person_id != records["p5"].person_id


def test_api_permissions_train_and_models(
    client: TestClient, runtime: Runtime, city: Any, make_actor: Any
) -> None:
    with runtime.sessions.begin() as s:
        _add_persons(s, city.stations[0].id, ROWS)
    officer = make_actor("officer", city.stations[0])
    analyst = make_actor("analyst", city.city)
    for path in ("/api/linkage/index/train", "/api/linkage/index/run", "/api/linkage/index/ingest"):
        assert client.post(path, headers=officer.headers).status_code == 403
    assert client.get("/api/linkage/index/models", headers=officer.headers).json() == []
    assert client.post("/api/linkage/index/run", headers=analyst.headers).status_code == 404
    too_few = client.post("/api/linkage/index/train", headers=analyst.headers)
    assert too_few.status_code == 422
    assert too_few.headers["content-type"].startswith("application/problem+json")
    got = client.post("/api/linkage/index/ingest", headers=analyst.headers)
    assert got.status_code == 200
    assert got.json() == {"changed": len(ROWS)}
    trained = client.post("/api/linkage/index/train", headers=analyst.headers)
    assert trained.status_code == 201, trained.text
    body = trained.json()
    assert body["active"]
    assert len(body["sha256"]) == 64
    assert body["metrics"]["records"] == len(ROWS)
    listed = client.get("/api/linkage/index/models", headers=officer.headers).json()
    assert [m["version"] for m in listed] == [body["version"]]
    ran = client.post("/api/linkage/index/run", headers=analyst.headers)
    assert ran.status_code == 200
    assert ran.json()["scored"] == len(ROWS)
    assert ran.json()["auto_linked"] > 0


def test_the_index_job_is_registered_and_skips_without_a_model(
    runtime: Runtime, city: Any, caplog: pytest.LogCaptureFixture
) -> None:
    jobs.load_job_modules()
    job = jobs.registry.get("linkage.index")
    assert job.every == dt.timedelta(minutes=10)
    with runtime.sessions.begin() as s:
        _add_persons(s, city.stations[0].id, ROWS[:5])
    caplog.set_level("INFO", logger="safecity.linkage.jobs")
    with runtime.sessions.begin() as s:
        ctx = jobs.JobContext(
            runtime=runtime, session=s, name=job.name, run_id="r", now=utcnow(), trigger="manual"
        )
        assert job.func(ctx) == 5
    assert "no active model" in caplog.text
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(LinkRecord)) == 5


def test_cli_index_commands(runtime: Runtime, city: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from safecity import cli
    from safecity.linkage import cli as linkage_cli

    monkeypatch.setattr(linkage_cli, "_runtime", lambda: runtime)
    with runtime.sessions.begin() as s:
        _add_persons(s, city.stations[0].id, ROWS[:12])
    runner = CliRunner()
    ingested = runner.invoke(cli.app, ["linkage", "index", "ingest"])
    assert ingested.exit_code == 0, ingested.output
    assert "12 record(s) created or changed" in ingested.output
    refused = runner.invoke(cli.app, ["linkage", "index", "train"])
    assert refused.exit_code == 1
    assert f"error: too few records to train the person index: {index.MIN_TRAIN_RECORDS}" in (
        refused.output
    )
    no_model = runner.invoke(cli.app, ["linkage", "index", "run"])
    assert no_model.exit_code == 1
    assert "error: no active person-index model" in no_model.output
