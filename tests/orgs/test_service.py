"""Organisation service: create, update, move, deactivate; audit and events; visibility."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.errors import Conflict, InvalidInput, NotFound
from safecity.platform.outbox import OutboxEvent
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal
from tests.conftest import City

pytestmark = pytest.mark.db

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[121.0, 31.0], [121.1, 31.0], [121.1, 31.1], [121.0, 31.1], [121.0, 31.0]]],
}


def _principal(org: Org, *, visible: frozenset[str] | None, role: str = "officer") -> Principal:
    return Principal(
        id=f"user-{role}",
        kind="user",
        username=role,
        roles=frozenset({role}),
        org_id=org.id,
        visible_org_ids=visible,
    )


def _events(session: Session, type_: str) -> list[OutboxEvent]:
    return list(session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)))


def _audits(session: Session, action: str) -> list[AuditEntry]:
    """Committed and pending (written at commit) audit records of ``action``."""
    committed = list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))
    return committed + [e for e in audit.pending_records(session) if e.action == action]


def test_create_sets_the_materialised_path_from_real_ids(city: City, session: Session) -> None:
    station = session.get(Org, city.stations[0].id)
    assert station is not None
    assert station.path == f"/{city.city.id}/{city.districts[0].id}/{station.id}/"
    assert "None" not in station.path
    ids = orgs.subtree_ids(session=session, org_id=city.districts[0].id)
    assert ids == {city.districts[0].id, city.stations[0].id, city.stations[1].id}
    chain = orgs.ancestors(session=session, org_id=station.id)
    assert [o.code for o in chain] == ["sh", "hp", "hp-s1"]


def test_create_is_audited_and_emits_a_valid_event(city: City, session: Session) -> None:
    created = _events(session, "orgs.org.created")
    assert {e.payload["code"] for e in created} >= {"sh", "hp", "hp-s1", "sanitation"}
    dept = next(e for e in created if e.payload["code"] == "sanitation")
    assert dept.org_id == city.department.id
    assert dept.payload["service_codes"] == ["litter"]
    audits = _audits(session, "orgs.org.create")
    assert city.department.id in {a.target_id for a in audits}
    assert all(a.actor_id == "system" for a in audits)


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"kind": "galaxy"}, InvalidInput, "unknown organisation kind"),
        ({"kind": "station", "parent": "city"}, InvalidInput, "cannot sit under city"),
        ({"code": "has space"}, InvalidInput, "code"),
        ({"code": "hp"}, Conflict, "already exists"),
        ({"name_zh": "  "}, InvalidInput, "name_zh must not be empty"),
        ({"service_codes": ["litter"]}, InvalidInput, "only departments"),
        ({"area": {"type": "Point", "coordinates": [121, 31]}}, InvalidInput, "Polygon"),
    ],
)
def test_create_refuses_bad_input(
    city: City, session: Session, fields: dict[str, Any], error: type[Exception], message: str
) -> None:
    parent = city.city if fields.pop("parent", "district") == "city" else city.districts[0]
    args: dict[str, Any] = {
        "code": "new-station",
        "kind": "station",
        "name_zh": "新派出所",
        "name_en": "New station",
        "parent_id": parent.id,
    }
    args.update(fields)
    with pytest.raises(error, match=message):
        orgs.create(session=session, **args)
    assert session.scalars(select(Org).where(Org.code == "new-station")).first() is None


def test_create_under_an_unknown_parent_is_not_found(session: Session, city: City) -> None:
    with pytest.raises(NotFound):
        orgs.create(
            session=session, code="x", kind="district", name_zh="x", name_en="x", parent_id="nope"
        )


def test_update_changes_only_what_differs_and_says_so(city: City, session: Session) -> None:
    station = city.stations[0]
    orgs.update(session=session, org_id=station.id, name_en="hp station 1")  # unchanged
    assert _events(session, "orgs.org.updated") == []
    org = orgs.update(
        session=session, org_id=station.id, name_en="Renamed", area=SQUARE, area_synthetic=True
    )
    assert org.name_en == "Renamed"
    assert org.area == SQUARE
    assert org.area_synthetic
    (event,) = _events(session, "orgs.org.updated")
    assert event.payload["changed"] == ["name_en", "area", "area_synthetic"]
    (entry,) = _audits(session, "orgs.org.update")
    assert entry.target_id == station.id
    assert entry.detail["changed"] == event.payload["changed"]
    cleared = orgs.update(session=session, org_id=station.id, area=None)
    assert cleared.area is None
    assert not cleared.area_synthetic


def test_rename(city: City, session: Session) -> None:
    org = orgs.rename(session=session, org_id=city.districts[0].id, name_zh="黄浦区")
    assert org.name_zh == "黄浦区"
    assert org.name_en == "District hp"
    with pytest.raises(InvalidInput):
        orgs.rename(session=session, org_id=city.districts[0].id)


def test_move_rewrites_the_paths_of_the_whole_subtree(city: City, session: Session) -> None:
    station = city.stations[0]
    office = orgs.create(
        session=session,
        code="hp-s1-c1",
        kind="community_office",
        name_zh="警务室",
        name_en="Office",
        parent_id=station.id,
    )
    target = city.districts[1]
    orgs.update(session=session, org_id=station.id, parent_id=target.id)
    assert orgs.subtree_ids(session=session, org_id=target.id) >= {station.id, office.id}
    assert office.path == f"/{city.city.id}/{target.id}/{station.id}/{office.id}/"
    assert orgs.subtree_ids(session=session, org_id=city.districts[0].id) == {
        city.districts[0].id,
        city.stations[1].id,
    }
    (event,) = _events(session, "orgs.org.updated")
    assert event.payload["changed"] == ["parent_id"]
    assert event.payload["parent_id"] == target.id


def test_move_refuses_a_cycle_and_a_wrong_parent_kind(city: City, session: Session) -> None:
    dept = orgs.create(
        session=session,
        code="sub",
        kind="department",
        name_zh="科",
        name_en="Unit",
        parent_id=city.department.id,
    )
    with pytest.raises(InvalidInput, match="under itself"):
        orgs.update(session=session, org_id=city.department.id, parent_id=dept.id)
    with pytest.raises(InvalidInput, match="cannot sit under"):
        orgs.update(session=session, org_id=city.stations[0].id, parent_id=city.city.id)


def test_deactivate_refuses_active_children_unless_cascading(city: City, session: Session) -> None:
    district = orgs.get(session=session, org_id=city.districts[0].id)
    with pytest.raises(Conflict, match="active organisation"):
        orgs.deactivate(session=session, org_id=district.id)
    assert district.active
    changed = orgs.deactivate(session=session, org_id=district.id, cascade=True)
    assert {o.id for o in changed} == {district.id, city.stations[0].id, city.stations[1].id}
    events = _events(session, "orgs.org.deactivated")
    assert len(events) == 3
    assert {e.payload["cascade_from"] for e in events} == {None, district.id}
    assert orgs.deactivate(session=session, org_id=district.id) == []  # already inactive
    with pytest.raises(Conflict, match="inactive"):
        orgs.create(
            session=session,
            code="late",
            kind="station",
            name_zh="晚",
            name_en="Late",
            parent_id=district.id,
        )
    with pytest.raises(Conflict, match="parent"):
        orgs.reactivate(session=session, org_id=city.stations[0].id)
    orgs.reactivate(session=session, org_id=district.id)
    assert orgs.get(session=session, org_id=district.id).active
    assert not orgs.get(session=session, org_id=city.stations[0].id).active
    assert len(_events(session, "orgs.org.reactivated")) == 1


def test_list_hides_inactive_orgs_unless_asked(city: City, session: Session) -> None:
    orgs.deactivate(session=session, org_id=city.stations[3].id)
    active, total = orgs.list_orgs(session=session, kind="station")
    assert total == 3
    assert city.stations[3].id not in {o.id for o in active}
    _everything, total_all = orgs.list_orgs(session=session, kind="station", include_inactive=True)
    assert total_all == 4
    page, total_page = orgs.list_orgs(session=session, limit=2, offset=1)
    assert len(page) == 2
    assert total_page == 7
    found, _ = orgs.list_orgs(session=session, search="SANIT")
    assert [o.code for o in found] == ["sanitation"]


def test_visibility_is_own_subtree_plus_ancestors_plus_departments(
    city: City, session: Session
) -> None:
    station = city.stations[0]
    officer = _principal(station, visible=frozenset({station.id}))
    visible = orgs.visible_ids(session=session, principal=officer)
    assert visible == {station.id, city.districts[0].id, city.city.id, city.department.id}
    items, _ = orgs.list_orgs(session=session, principal=officer)
    assert {o.code for o in items} == {"sh", "hp", "hp-s1", "sanitation"}
    with pytest.raises(NotFound):
        orgs.get_visible(session=session, principal=officer, org_id=city.districts[1].id)
    with pytest.raises(NotFound):
        orgs.get_visible(session=session, principal=officer, org_id=city.stations[1].id)
    assert orgs.get_visible(session=session, principal=officer, org_id=city.department.id)
    admin = _principal(city.city, visible=None, role="admin")
    assert orgs.visible_ids(session=session, principal=admin) is None
    assert len(orgs.list_orgs(session=session, principal=admin)[0]) == 8


def test_tree_nests_children_under_parents(city: City, session: Session) -> None:
    (root,) = orgs.tree(session=session)
    assert root["org"].code == "sh"
    kinds = [child["org"].kind for child in root["children"]]
    assert kinds == ["district", "district", "department"]
    hp = root["children"][0]
    assert [c["org"].code for c in hp["children"]] == ["hp-s1", "hp-s2"]


def test_area_features_and_org_for_point(city: City, runtime: Runtime) -> None:
    inner = {
        "type": "Polygon",
        "coordinates": [
            [[121.0, 31.0], [121.05, 31.0], [121.05, 31.1], [121.0, 31.1], [121.0, 31.0]]
        ],
    }
    with runtime.sessions.begin() as s:
        orgs.update(session=s, org_id=city.districts[0].id, area=SQUARE)
        orgs.update(session=s, org_id=city.stations[0].id, area=inner, area_synthetic=True)
    with runtime.sessions() as s:
        collection = orgs.area_features(session=s)
        assert collection["type"] == "FeatureCollection"
        props = {f["properties"]["code"]: f["properties"] for f in collection["features"]}
        assert set(props) == {"hp", "hp-s1"}
        assert props["hp-s1"]["synthetic"] is True
        assert props["hp"]["synthetic"] is False
        assert props["hp"]["kind"] == "district"
        assert props["hp"]["name_en"] == "District hp"
        found = orgs.org_for_point(session=s, lat=31.05, lng=121.02)
        assert found is not None
        assert found.code == "hp-s1"
        assert orgs.org_for_point(session=s, lat=31.05, lng=121.08) is None
        district = orgs.org_for_point(session=s, lat=31.05, lng=121.08, kind="district")
        assert district is not None
        assert district.code == "hp"
