"""Importing organisations from CSV and YAML: all or nothing, errors name their place."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safecity.orgs import importer
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.errors import InvalidInput, PayloadTooLarge
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from tests.conftest import City

pytestmark = pytest.mark.db

AREA = {
    "type": "Polygon",
    "coordinates": [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1], [121.0, 31.0]]],
}
AREA_CSV = json.dumps(AREA).replace('"', '""')

GOOD_CSV = f"""code,kind,name_zh,name_en,parent,service_codes,area,area_synthetic
jd-s1,station,嘉定镇派出所,Jiading Town Station,jd,,"{AREA_CSV}",true
jd,district,嘉定区,Jiading,sh,,,
jd-s1-c1,community_office,州桥警务室,Zhouqiao Office,jd-s1,,,
housing,department,房管局,Housing,sh,building_repair;elevator_fault,,
"""

GOOD_YAML = """
orgs:
  - code: jd
    kind: district
    name_zh: 嘉定区
    name_en: Jiading
    parent: sh
    children:
      - code: jd-s1
        kind: station
        name_zh: 嘉定镇派出所
        name_en: Jiading Town Station
        area_synthetic: true
        area:
          type: Polygon
          coordinates: [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.0]]]
        children:
          - {code: jd-s1-c1, kind: community_office, name_zh: 州桥警务室, name_en: Zhouqiao}
  - code: housing
    kind: department
    name_zh: 房管局
    name_en: Housing
    parent: sh
    service_codes: [building_repair, elevator_fault]
"""


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _import(runtime: Runtime, content: str | bytes, filename: str, **kw: Any) -> Any:
    data = content.encode() if isinstance(content, str) else content
    with runtime.sessions.begin() as s:
        return importer.import_orgs(session=s, content=data, filename=filename, **kw)


def test_csv_import_creates_parents_before_children(city: City, runtime: Runtime) -> None:
    calls: list[tuple[int, int]] = []
    result = _import(runtime, GOOD_CSV, "orgs.csv", progress=lambda d, t: calls.append((d, t)))
    assert (result.total, result.created, result.updated, result.unchanged) == (4, 4, 0, 0)
    assert calls[-1] == (4, 4)
    with runtime.sessions() as s:
        station = orgs.get_by_code(session=s, code="jd-s1")
        district = orgs.get_by_code(session=s, code="jd")
        assert station.parent_id == district.id
        assert district.parent_id == city.city.id
        assert station.area == AREA
        assert station.area_synthetic
        office = orgs.get_by_code(session=s, code="jd-s1-c1")
        assert office.path == f"{station.path}{office.id}/"
        housing = orgs.get_by_code(session=s, code="housing")
        assert housing.service_codes == ["building_repair", "elevator_fault"]
        created = s.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.type == "orgs.org.created")
        ).all()
        assert {"jd", "jd-s1", "jd-s1-c1", "housing"} <= {p["code"] for p in created}


def test_importing_the_same_file_twice_changes_nothing(city: City, runtime: Runtime) -> None:
    _import(runtime, GOOD_CSV, "orgs.csv")
    with runtime.sessions() as s:
        events_before = _count(s, OutboxEvent)
    again = _import(runtime, GOOD_CSV, "orgs.csv")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)
    with runtime.sessions() as s:
        assert _count(s, OutboxEvent) == events_before


def test_a_changed_row_updates_the_existing_org(city: City, runtime: Runtime) -> None:
    _import(runtime, GOOD_CSV, "orgs.csv")
    changed = GOOD_CSV.replace("Jiading,sh", "Jiading District,sh")
    result = _import(runtime, changed, "orgs.csv")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 3)
    with runtime.sessions() as s:
        assert orgs.get_by_code(session=s, code="jd").name_en == "Jiading District"


def test_yaml_import_with_nested_children(city: City, runtime: Runtime) -> None:
    result = _import(runtime, GOOD_YAML, "orgs.yaml")
    assert result.created == 4
    with runtime.sessions() as s:
        office = orgs.get_by_code(session=s, code="jd-s1-c1")
        station = orgs.get_by_code(session=s, code="jd-s1")
        assert office.parent_id == station.id
        assert station.area_synthetic


def test_json_and_a_plain_yaml_list_are_accepted(city: City, runtime: Runtime) -> None:
    rows = [
        {
            "code": "jd",
            "kind": "district",
            "name_zh": "嘉定区",
            "name_en": "Jiading",
            "parent": "sh",
        }
    ]
    assert _import(runtime, json.dumps(rows), "orgs.json").created == 1
    listed = "- {code: qp, kind: district, name_zh: 青浦区, name_en: Qingpu, parent: sh}\n"
    assert _import(runtime, listed, "orgs.yml").created == 1


def test_dry_run_counts_and_writes_nothing(city: City, runtime: Runtime) -> None:
    with runtime.sessions() as s:
        before = _count(s, Org)
    result = _import(runtime, GOOD_CSV, "orgs.csv", dry_run=True)
    assert (result.dry_run, result.created) == (True, 4)
    with runtime.sessions() as s:
        assert _count(s, Org) == before


HEADER = "code,kind,name_zh,name_en,parent\n"


@pytest.mark.parametrize(
    ("content", "filename", "expected"),
    [
        (
            HEADER + "jd,district,嘉定,Jiading,sh\njd-s1,station,站,S,nowhere\n",
            "o.csv",
            "o.csv line 3: unknown parent 'nowhere'",
        ),
        (
            HEADER + "jd,district,嘉定,Jiading,sh\njd,district,嘉定,Jiading,sh\n",
            "o.csv",
            "o.csv line 3: duplicate code 'jd' (first at o.csv line 2)",
        ),
        (
            HEADER + "jd,county,嘉定,Jiading,sh\n",
            "o.csv",
            "o.csv line 2: unknown organisation kind 'county'",
        ),
        (
            "code,kind,name_zh,name_en,parent,area\n"
            'jd,district,嘉定,Jiading,sh,"{""type"": ""Polygon"", ""coordinates"": '
            '[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}"\n',
            "o.csv",
            "o.csv line 2: area is not a valid polygon",
        ),
        (
            "code,kind,name_zh,name_en,parent,area\njd,district,嘉定,Jiading,sh,{oops\n",
            "o.csv",
            "o.csv line 2: area is not valid JSON",
        ),
        (
            "code,kind,name_zh,colour\njd,district,嘉定,red\n",
            "o.csv",
            "o.csv line 1: missing column(s) name_en; unknown column(s) 'colour'",
        ),
        (
            HEADER + "jd,district,嘉定,Jiading\n",
            "o.csv",
            "o.csv line 2: has 4 fields, the header has 5",
        ),
        (HEADER + "jd,district,,Jiading,sh\n", "o.csv", "o.csv line 2: name_zh is required"),
        (HEADER + "a,department,甲,A,b\nb,department,乙,B,a\n", "o.csv", "is its own ancestor"),
        (
            HEADER + "hp,station,黄浦,Huangpu,sh\n",
            "o.csv",
            "o.csv line 2: 'hp' exists as a district, not a station",
        ),
        (
            HEADER + "hp-s1,station,站,S,pd\n",
            "o.csv",
            "'hp-s1' exists under hp; moving organisations by import is not supported",
        ),
        (
            HEADER + "jd,station,嘉定,Jiading,sh\n",
            "o.csv",
            "o.csv line 2: a station cannot sit under city",
        ),
        (
            "code,kind,name_zh,name_en,parent,service_codes\nx,station,站,S,hp,litter\n",
            "o.csv",
            "o.csv line 2: only departments carry service codes",
        ),
        (
            "code,kind,name_zh,name_en,parent,area_synthetic\nx,station,站,S,hp,maybe\n",
            "o.csv",
            "area_synthetic must be true or false",
        ),
        (
            "- &a {code: jd, kind: district, name_zh: 嘉定, name_en: J, parent: sh}\n- *a\n",
            "o.yaml",
            "o.yaml line 1: YAML anchors and aliases are not allowed",
        ),
        ("- code: jd\n  kind: [district\n", "o.yaml", "o.yaml line 3: not valid YAML"),
        (
            "- {code: jd, kind: district, name_zh: 嘉定, name_en: J, parent: sh, size: 3}\n",
            "o.yaml",
            "o.yaml entry 1 (line 1): unknown field(s) size",
        ),
        ("- just a string\n", "o.yaml", "o.yaml entry 1 (line 1): entry must be a mapping"),
        ("orgs: 3\n", "o.yaml", "expected a list of organisations"),
        ("", "o.csv", "o.csv is empty"),
        ("", "o.yaml", "o.yaml is empty"),
        (HEADER, "o.csv", "contains no organisations"),
        ("code\n", "o.txt", "unsupported file type"),
    ],
)
def test_bad_files_are_refused_with_their_place_and_write_nothing(
    city: City, runtime: Runtime, content: str, filename: str, expected: str
) -> None:
    with runtime.sessions() as s:
        before = (_count(s, Org), _count(s, OutboxEvent))
    with pytest.raises(InvalidInput) as info:
        _import(runtime, content, filename)
    assert expected in info.value.detail
    assert "\n" not in info.value.detail
    with runtime.sessions() as s:
        assert (_count(s, Org), _count(s, OutboxEvent)) == before


def test_every_problem_is_listed_but_the_message_stays_one_line(
    city: City, runtime: Runtime
) -> None:
    rows = "".join(f"x{i},county,甲,A,sh\n" for i in range(30))
    with pytest.raises(importer.ImportFailed) as info:
        _import(runtime, HEADER + rows, "many.csv")
    failure = info.value
    assert len(failure.problems) == 30
    assert failure.detail.startswith("many.csv: 30 problems, nothing imported: many.csv line 2")
    assert failure.detail.endswith("(and 27 more)")
    assert len(failure.extra["errors"]) == importer.MAX_REPORTED
    assert failure.extra["errors_not_shown"] == 10


def test_bytes_that_are_not_utf8_are_refused(city: City, runtime: Runtime) -> None:
    with pytest.raises(InvalidInput, match="not UTF-8"):
        _import(runtime, (HEADER + "jd,district,嘉定,J,sh\n").encode("gb18030"), "o.csv")


def test_a_utf8_bom_is_accepted(city: City, runtime: Runtime) -> None:
    content = "\ufeff" + HEADER + "jd,district,嘉定,J,sh\n"
    assert _import(runtime, content.encode("utf-8"), "o.csv").created == 1


def test_oversized_files_are_refused(
    city: City, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_IMPORT_BYTES", 50)
    with pytest.raises(PayloadTooLarge):
        _import(runtime, GOOD_CSV, "orgs.csv")


def test_a_failure_while_writing_rolls_everything_back(
    city: City, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_create = orgs.create
    calls = {"n": 0}

    def flaky_create(**kwargs: Any) -> Org:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real_create(**kwargs)

    monkeypatch.setattr(orgs, "create", flaky_create)
    with runtime.sessions() as s:
        before = (_count(s, Org), _count(s, OutboxEvent))
    with pytest.raises(RuntimeError, match="disk full"):
        _import(runtime, GOOD_CSV, "orgs.csv")
    assert calls["n"] == 3
    with runtime.sessions() as s:
        assert (_count(s, Org), _count(s, OutboxEvent)) == before
        assert s.scalars(select(Org).where(Org.code == "jd")).first() is None
