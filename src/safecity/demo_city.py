"""The demo city: Shanghai's 16 districts, police stations, community police offices and
city departments, created through :mod:`safecity.orgs.service`.

* District outlines come from ``data/shanghai_districts.geojson`` (real boundaries,
  simplified; see ``data/README.md`` for source and licence).
* Station names follow real sub-districts and towns, but their points are approximate
  and their areas are **synthetic**: the Voronoi cells of the station points clipped to
  the district outline, stored with ``area_synthetic=True``.
* Departments carry the Open311 service codes they receive work orders for.

:func:`seed_demo_orgs` is idempotent: running it twice creates nothing new.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform import geo
from safecity.platform.errors import NotFound
from safecity.security.rbac import Principal

CITY_CODE = "310000"
CITY_NAME_ZH = "上海市"
CITY_NAME_EN = "Shanghai"


class District(NamedTuple):
    code: str  # GB/T 2260 county-level code
    name_zh: str
    name_en: str


class Station(NamedTuple):
    code: str
    name_zh: str
    name_en: str
    lng: float  # approximate WGS84 point of the sub-district/town it is named after
    lat: float


class CommunityOffice(NamedTuple):
    code: str
    station_code: str
    name_zh: str
    name_en: str


class Department(NamedTuple):
    code: str
    name_zh: str
    name_en: str
    service_codes: tuple[str, ...]


DISTRICTS: tuple[District, ...] = (
    District("310101", "黄浦区", "Huangpu District"),
    District("310104", "徐汇区", "Xuhui District"),
    District("310105", "长宁区", "Changning District"),
    District("310106", "静安区", "Jing'an District"),
    District("310107", "普陀区", "Putuo District"),
    District("310109", "虹口区", "Hongkou District"),
    District("310110", "杨浦区", "Yangpu District"),
    District("310112", "闵行区", "Minhang District"),
    District("310113", "宝山区", "Baoshan District"),
    District("310114", "嘉定区", "Jiading District"),
    District("310115", "浦东新区", "Pudong New Area"),
    District("310116", "金山区", "Jinshan District"),
    District("310117", "松江区", "Songjiang District"),
    District("310118", "青浦区", "Qingpu District"),
    District("310120", "奉贤区", "Fengxian District"),
    District("310151", "崇明区", "Chongming District"),
)


def _stations(district: str, *rows: tuple[str, str, float, float]) -> tuple[Station, ...]:
    return tuple(
        Station(f"{district}-ps{i:02d}", f"{zh}派出所", f"{en} Police Station", lng, lat)
        for i, (zh, en, lng, lat) in enumerate(rows, start=1)
    )


# Points are approximate WGS84 locations of the named sub-district or town.
STATIONS: dict[str, tuple[Station, ...]] = {
    "310101": _stations(
        "310101",
        ("南京东路", "East Nanjing Road", 121.4800, 31.2380),
        ("豫园", "Yuyuan", 121.4900, 31.2260),
        ("打浦桥", "Dapuqiao", 121.4690, 31.2080),
    ),
    "310104": _stations(
        "310104",
        ("徐家汇", "Xujiahui", 121.4370, 31.1950),
        ("田林", "Tianlin", 121.4200, 31.1730),
        ("龙华", "Longhua", 121.4500, 31.1750),
    ),
    "310105": _stations(
        "310105",
        ("新华路", "Xinhua Road", 121.4280, 31.2080),
        ("仙霞", "Xianxia", 121.3900, 31.2100),
        ("北新泾", "Beixinjing", 121.3800, 31.2200),
    ),
    "310106": _stations(
        "310106",
        ("静安寺", "Jing'an Temple", 121.4460, 31.2240),
        ("大宁", "Daning", 121.4570, 31.2800),
        ("彭浦", "Pengpu", 121.4500, 31.3000),
    ),
    "310107": _stations(
        "310107",
        ("长寿路", "Changshou Road", 121.4400, 31.2450),
        ("真如", "Zhenru", 121.4000, 31.2500),
        ("桃浦", "Taopu", 121.3750, 31.2800),
    ),
    "310109": _stations(
        "310109",
        ("四川北路", "North Sichuan Road", 121.4850, 31.2600),
        ("凉城", "Liangcheng", 121.4730, 31.2870),
        ("提篮桥", "Tilanqiao", 121.5050, 31.2550),
    ),
    "310110": _stations(
        "310110",
        ("五角场", "Wujiaochang", 121.5140, 31.3010),
        ("平凉路", "Pingliang Road", 121.5250, 31.2650),
        ("控江路", "Kongjiang Road", 121.5300, 31.2800),
    ),
    "310112": _stations(
        "310112",
        ("莘庄", "Xinzhuang", 121.3850, 31.1110),
        ("七宝", "Qibao", 121.3500, 31.1550),
        ("江川路", "Jiangchuan Road", 121.3900, 31.0150),
    ),
    "310113": _stations(
        "310113",
        ("友谊路", "Youyi Road", 121.4900, 31.4050),
        ("大场", "Dachang", 121.4150, 31.3050),
        ("顾村", "Gucun", 121.3800, 31.3500),
    ),
    "310114": _stations(
        "310114",
        ("嘉定镇", "Jiading Town", 121.2500, 31.3850),
        ("安亭", "Anting", 121.1650, 31.2950),
        ("南翔", "Nanxiang", 121.3200, 31.2950),
    ),
    "310115": _stations(
        "310115",
        ("陆家嘴", "Lujiazui", 121.5100, 31.2350),
        ("张江", "Zhangjiang", 121.6000, 31.2050),
        ("川沙", "Chuansha", 121.7000, 31.1900),
        ("惠南", "Huinan", 121.7600, 31.0500),
    ),
    "310116": _stations(
        "310116",
        ("石化", "Shihua", 121.3400, 30.7300),
        ("朱泾", "Zhujing", 121.1700, 30.9000),
    ),
    "310117": _stations(
        "310117",
        ("岳阳", "Yueyang", 121.2300, 31.0100),
        ("九亭", "Jiuting", 121.3200, 31.1300),
        ("泗泾", "Sijing", 121.2600, 31.1200),
    ),
    "310118": _stations(
        "310118",
        ("夏阳", "Xiayang", 121.1200, 31.1500),
        ("朱家角", "Zhujiajiao", 121.0550, 31.1100),
        ("徐泾", "Xujing", 121.2800, 31.1900),
    ),
    "310120": _stations(
        "310120",
        ("南桥", "Nanqiao", 121.4600, 30.9200),
        ("海湾", "Haiwan", 121.5000, 30.8400),
        ("奉城", "Fengcheng", 121.6300, 30.9200),
    ),
    "310151": _stations(
        "310151",
        ("城桥", "Chengqiao", 121.4000, 31.6300),
        ("堡镇", "Baozhen", 121.6100, 31.5300),
        ("陈家镇", "Chenjiazhen", 121.8300, 31.5300),
    ),
}

COMMUNITY_OFFICES: tuple[CommunityOffice, ...] = (
    CommunityOffice(
        "310101-ps01-cp01", "310101-ps01", "外滩社区警务室", "The Bund Community Office"
    ),
    CommunityOffice(
        "310101-ps01-cp02", "310101-ps01", "人民广场社区警务室", "People's Square Community Office"
    ),
    CommunityOffice(
        "310101-ps02-cp01", "310101-ps02", "老城厢社区警务室", "Old Town Community Office"
    ),
    CommunityOffice(
        "310104-ps01-cp01", "310104-ps01", "衡山路社区警务室", "Hengshan Road Community Office"
    ),
    CommunityOffice(
        "310115-ps01-cp01", "310115-ps01", "世纪大道社区警务室", "Century Avenue Community Office"
    ),
    CommunityOffice(
        "310110-ps01-cp01", "310110-ps01", "大学路社区警务室", "Daxue Road Community Office"
    ),
)

DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "310000-sanitation",
        "市绿化和市容管理局",
        "Landscaping and City Appearance Bureau",
        ("litter", "overflowing_bin", "illegal_dumping", "street_cleaning", "damaged_greenery"),
    ),
    Department(
        "310000-housing",
        "市房屋管理局",
        "Housing Administration Bureau",
        ("building_repair", "property_management", "elevator_fault", "unsafe_building"),
    ),
    Department(
        "310000-urban-management",
        "市城市管理行政执法局",
        "Urban Management and Law Enforcement Bureau",
        ("street_vending", "illegal_construction", "illegal_advertising", "construction_noise"),
    ),
    Department(
        "310000-market-regulation",
        "市市场监督管理局",
        "Market Regulation Administration",
        ("food_safety", "price_complaint", "unlicensed_business", "product_quality"),
    ),
    Department(
        "310000-transport",
        "市交通委员会",
        "Transport Commission",
        ("road_damage", "traffic_signal_fault", "road_sign", "bus_service"),
    ),
    Department(
        "310000-water",
        "市水务局",
        "Water Authority",
        ("water_leak", "blocked_drain", "street_flooding"),
    ),
    Department(
        "310000-environment",
        "市生态环境局",
        "Ecology and Environment Bureau",
        ("air_pollution", "noise_pollution", "water_pollution"),
    ),
    Department(
        "310000-iot-operations",
        "市城市运行物联感知运维中心",
        "City IoT Sensing Operations Centre",
        ("sensor_maintenance", "streetlight"),
    ),
)

# Handy codes for demo users and examples.
DEMO_DISTRICT_CODE = "310101"  # Huangpu
DEMO_OTHER_DISTRICT_CODE = "310115"  # Pudong
DEMO_STATION_CODE = "310101-ps01"
DEMO_DEPARTMENT_CODE = "310000-sanitation"

DISTRICTS_GEOJSON = "shanghai_districts.geojson"


@lru_cache(maxsize=1)
def _district_collection_text() -> str:
    return resources.files("safecity").joinpath("data", DISTRICTS_GEOJSON).read_text("utf-8")


def district_outlines() -> dict[str, Any]:
    """The bundled FeatureCollection of the 16 district outlines (WGS84)."""
    data: dict[str, Any] = json.loads(_district_collection_text())
    return data


def district_area(code: str) -> dict[str, Any]:
    """The bundled outline (a GeoJSON geometry) of one district."""
    for feature in district_outlines()["features"]:
        if feature["properties"]["code"] == code:
            geometry: dict[str, Any] = feature["geometry"]
            return geometry
    raise NotFound(f"no bundled outline for district {code!r}")


def station_areas(district_code: str) -> dict[str, dict[str, Any]]:
    """Synthetic station areas of a district: Voronoi cells clipped to its outline."""
    points = {s.code: (s.lng, s.lat) for s in STATIONS[district_code]}
    return geo.voronoi_areas(points, district_area(district_code))


def _ensure(
    session: Session, *, code: str, actor: Principal | None, counter: list[int], **fields: Any
) -> Org:
    try:
        return orgs.get_by_code(session=session, code=code)
    except NotFound:
        counter[0] += 1
        return orgs.create(session=session, code=code, actor=actor, **fields)


def seed_demo_orgs(session: Session, *, actor: Principal | None = None) -> dict[str, Any]:
    """Create the demo city's organisations (idempotent; the caller commits).

    Returns ``{"city": id, "districts": {code: id}, "stations": {code: id},
    "community_offices": {code: id}, "departments": {code: id}, "created": n}``.
    """
    created = [0]
    city = _ensure(
        session,
        code=CITY_CODE,
        actor=actor,
        counter=created,
        kind="city",
        name_zh=CITY_NAME_ZH,
        name_en=CITY_NAME_EN,
    )
    result: dict[str, Any] = {
        "city": city.id,
        "districts": {},
        "stations": {},
        "community_offices": {},
        "departments": {},
    }
    for district in DISTRICTS:
        d = _ensure(
            session,
            code=district.code,
            actor=actor,
            counter=created,
            kind="district",
            name_zh=district.name_zh,
            name_en=district.name_en,
            parent_id=city.id,
            area=district_area(district.code),
            area_synthetic=False,
        )
        result["districts"][district.code] = d.id
        areas = station_areas(district.code)
        for station in STATIONS[district.code]:
            s = _ensure(
                session,
                code=station.code,
                actor=actor,
                counter=created,
                kind="station",
                name_zh=station.name_zh,
                name_en=station.name_en,
                parent_id=d.id,
                area=areas[station.code],
                area_synthetic=True,
            )
            result["stations"][station.code] = s.id
    for office in COMMUNITY_OFFICES:
        o = _ensure(
            session,
            code=office.code,
            actor=actor,
            counter=created,
            kind="community_office",
            name_zh=office.name_zh,
            name_en=office.name_en,
            parent_id=result["stations"][office.station_code],
        )
        result["community_offices"][office.code] = o.id
    for dept in DEPARTMENTS:
        o = _ensure(
            session,
            code=dept.code,
            actor=actor,
            counter=created,
            kind="department",
            name_zh=dept.name_zh,
            name_en=dept.name_en,
            parent_id=city.id,
            service_codes=list(dept.service_codes),
        )
        result["departments"][dept.code] = o.id
    result["created"] = created[0]
    return result
