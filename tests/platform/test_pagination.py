"""The shared list helper: paging, sorting, equality filters, 422 on anything else."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Boolean, Column, DateTime, Integer, String, select

from safecity.app import create_app
from safecity.orgs.models import Org
from safecity.platform.errors import InvalidInput
from safecity.platform.pagination import (
    MAX_SORT_KEYS,
    ListParams,
    ListSpec,
    Page,
    SortKey,
    format_sort,
    paginate,
    parse_filter_value,
    parse_sort,
)
from safecity.platform.runtime import DbSession, Runtime
from safecity.security.rbac import Principal, require, scope_clause
from tests.conftest import Actor, City

PROBLEM = "application/problem+json"
FIELDS = ("code", "name", "created_at", "kind")


class OrgItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    code: str
    kind: str
    name_en: str


ORG_LIST = ListSpec(
    sort={"code": Org.code, "name": Org.name_en, "created_at": Org.created_at, "kind": Org.kind},
    filters={"kind": Org.kind, "parent_id": Org.parent_id, "active": Org.active},
    default_sort="code",
    default_limit=3,
    max_limit=5,
)


def _test_router() -> APIRouter:
    router = APIRouter(prefix="/_test")

    @router.get("/orgs")
    def list_orgs(
        principal: Annotated[Principal, Depends(require("orgs:read"))],
        session: DbSession,
        params: Annotated[ListParams, Depends(ORG_LIST.params)],
        q: str | None = None,
    ) -> Page[OrgItem]:
        query = select(Org).where(scope_clause(principal, Org.id))
        if q:
            query = query.where(Org.name_en.contains(q))
        return paginate(session=session, query=query, params=params, item=OrgItem)

    return router


@pytest.fixture
def api(runtime: Runtime) -> Iterator[TestClient]:
    app = create_app(runtime=runtime)
    app.include_router(_test_router())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin(city: City, make_actor: Any) -> Actor:
    actor: Actor = make_actor("admin", city.city)
    return actor


# --- the parser ----------------------------------------------------------------------


def test_parse_sort_basics() -> None:
    assert parse_sort(None, FIELDS) == []
    assert parse_sort("  ", FIELDS) == []
    assert parse_sort("-created_at, code", FIELDS) == [
        SortKey("created_at", True),
        SortKey("code", False),
    ]
    assert parse_sort("+name", FIELDS) == [SortKey("name")]


@pytest.mark.parametrize(
    "raw", ["password", "code,code", "-", ",", "code,", "code;drop table orgs", "--code", "Code"]
)
def test_parse_sort_rejects(raw: str) -> None:
    with pytest.raises(InvalidInput):
        parse_sort(raw, FIELDS)


@given(st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_parse_sort_never_fails_unexpectedly(raw: str) -> None:
    """Any string either parses to known, distinct fields or raises InvalidInput."""
    try:
        keys = parse_sort(raw, FIELDS)
    except InvalidInput:
        return
    names = [k.field for k in keys]
    assert set(names) <= set(FIELDS)
    assert len(names) == len(set(names))
    assert len(keys) <= MAX_SORT_KEYS


@given(
    st.lists(st.sampled_from(FIELDS), unique=True, max_size=len(FIELDS)).flatmap(
        lambda names: st.tuples(
            st.just(names), st.lists(st.booleans(), min_size=len(names), max_size=len(names))
        )
    )
)
@settings(max_examples=200, deadline=None)
def test_format_then_parse_round_trips(names_and_dirs: tuple[list[str], list[bool]]) -> None:
    names, dirs = names_and_dirs
    keys = [SortKey(n, d) for n, d in zip(names, dirs, strict=True)]
    assert parse_sort(format_sort(keys), FIELDS) == keys


@given(st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_filter_values_convert_or_raise_invalid_input(raw: str) -> None:
    for column in (
        Column("n", Integer),
        Column("b", Boolean),
        Column("t", DateTime(timezone=True)),
        Column("s", String(8)),
    ):
        try:
            value = parse_filter_value(column.name, raw, column)
        except InvalidInput:
            continue
        assert isinstance(value, column.type.python_type)


def test_filter_value_types() -> None:
    assert parse_filter_value("n", "42", Column("n", Integer)) == 42
    assert parse_filter_value("b", "false", Column("b", Boolean)) is False
    assert parse_filter_value("t", "2025-01-31T08:00:00Z", Column("t", DateTime())) == datetime(
        2025, 1, 31, 8, tzinfo=UTC
    )
    for bad, column in [
        ("x", Column("n", Integer)),
        ("2025-01-31T08:00:00", Column("t", DateTime())),  # naive
        ("too-long-value", Column("s", String(8))),
        ("nul\x00byte", Column("s", String(8))),
    ]:
        with pytest.raises(InvalidInput):
            parse_filter_value(column.name, bad, column)


def test_spec_rejects_a_filter_that_shadows_paging() -> None:
    with pytest.raises(ValueError, match="clash"):
        ListSpec(sort={"code": Org.code}, filters={"limit": Org.code})


def test_spec_parse_checks_bounds() -> None:
    with pytest.raises(InvalidInput):
        ORG_LIST.parse(limit=6)
    with pytest.raises(InvalidInput):
        ORG_LIST.parse(offset=-1)
    with pytest.raises(InvalidInput, match="cannot filter"):
        ORG_LIST.parse(filters={"password": "x"})
    assert ORG_LIST.parse().sort == (SortKey("code"),)


# --- through the API -----------------------------------------------------------------


@pytest.mark.db
def test_pages_follow_next_links_to_the_end(api: TestClient, admin: Actor) -> None:
    seen: list[str] = []
    url: str | None = "/_test/orgs?sort=-code"
    pages = 0
    while url:
        r = api.get(url, headers=admin.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == 8
        assert len(body["items"]) <= 3
        seen += [item["code"] for item in body["items"]]
        url = body["next"]
        pages += 1
    assert pages == 3
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 8


@pytest.mark.db
def test_next_link_keeps_filters_and_sort(api: TestClient, admin: Actor) -> None:
    r = api.get("/_test/orgs?kind=station&sort=name&limit=2", headers=admin.headers)
    body = r.json()
    assert body["total"] == 4
    assert body["limit"] == 2
    assert {i["kind"] for i in body["items"]} == {"station"}
    nxt = body["next"]
    assert nxt.startswith("/_test/orgs?")
    assert "kind=station" in nxt
    assert "sort=name" in nxt
    assert "offset=2" in nxt
    last = api.get(nxt, headers=admin.headers).json()
    assert last["offset"] == 2
    assert last["next"] is None
    assert len(last["items"]) == 2


@pytest.mark.db
def test_filters_combine_and_typed_filters_convert(
    api: TestClient, admin: Actor, city: City
) -> None:
    r = api.get(f"/_test/orgs?parent_id={city.districts[0].id}&active=true", headers=admin.headers)
    assert r.json()["total"] == 2
    r = api.get("/_test/orgs?active=false", headers=admin.headers)
    assert r.json()["total"] == 0


@pytest.mark.db
def test_list_respects_org_scope(api: TestClient, city: City, make_actor: Any) -> None:
    officer: Actor = make_actor("officer", city.districts[0])
    body = api.get("/_test/orgs?limit=5", headers=officer.headers).json()
    assert body["total"] == 3  # the district and its two stations


@pytest.mark.db
@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("sort=password", "cannot sort"),
        ("sort=code,-code", "twice"),
        ("limit=6", "limit"),
        ("limit=0", "limit"),
        ("offset=-1", "offset"),
        ("limit=abc", "limit"),
        ("active=maybe", "active"),
        ("password=x", "password"),
        ("kind=station&sort=-", "sort"),
        ("offset=99999999999999999999999", "offset"),
    ],
)
def test_invalid_list_queries_are_422_problems(
    api: TestClient, admin: Actor, query: str, needle: str
) -> None:
    r = api.get(f"/_test/orgs?{query}", headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert needle in r.text


@pytest.mark.db
def test_route_parameters_are_not_unknown(api: TestClient, admin: Actor) -> None:
    r = api.get("/_test/orgs?q=District", headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["total"] == 2


@pytest.mark.db
def test_injection_in_filters_is_just_a_value(
    api: TestClient, admin: Actor, runtime: Runtime
) -> None:
    r = api.get("/_test/orgs", params={"kind": "x' OR '1'='1"}, headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["total"] == 0
    assert api.get("/_test/orgs", headers=admin.headers).json()["total"] == 8


def test_openapi_lists_the_parameters(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    op = spec["paths"]["/_test/orgs"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"limit", "offset", "sort", "kind", "parent_id", "active", "q"} <= names
    limit = next(p for p in op["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 5
    assert "Page_OrgItem_" in spec["components"]["schemas"]
