"""The service catalogue: human names (zh/en) of the service codes work orders carry.

The codes a city *offers* are the ones its departments declare (``Org.service_codes``)
or its routing table names; this catalogue only names them (an unknown code is shown as
itself). ``COMMUNITY_CODES`` are handled by the neighbourhood (the community office under
the station owning the place) when no rule or department takes them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    code: str
    name_zh: str
    name_en: str
    group: str = "city"
    keywords: tuple[str, ...] = ()

    def name(self, lang: str = "en") -> str:
        return self.name_zh if lang == "zh" else self.name_en


_SERVICES: tuple[ServiceInfo, ...] = (
    ServiceInfo("litter", "乱扔垃圾", "Litter", "sanitation", ("rubbish", "trash")),
    ServiceInfo("overflowing_bin", "垃圾桶满溢", "Overflowing bin", "sanitation"),
    ServiceInfo("illegal_dumping", "违规倾倒", "Illegal dumping", "sanitation"),
    ServiceInfo("street_cleaning", "道路保洁", "Street cleaning", "sanitation"),
    ServiceInfo("damaged_greenery", "绿化损坏", "Damaged greenery", "sanitation"),
    ServiceInfo("illegal_parking", "违法停车", "Illegal parking", "transport", ("parking",)),
    ServiceInfo("noise", "噪声扰民", "Noise", "environment", ("noise",)),
    ServiceInfo("noise_pollution", "噪声污染", "Noise pollution", "environment"),
    ServiceInfo("construction_noise", "施工噪声", "Construction noise", "urban_management"),
    ServiceInfo("streetlight", "路灯故障", "Streetlight out", "infrastructure", ("light",)),
    ServiceInfo("road_damage", "道路损坏", "Road damage", "transport", ("pothole",)),
    ServiceInfo("traffic_signal_fault", "信号灯故障", "Traffic signal fault", "transport"),
    ServiceInfo("road_sign", "道路标志", "Road sign", "transport"),
    ServiceInfo("bus_service", "公交服务", "Bus service", "transport"),
    ServiceInfo(
        "building_safety",
        "楼宇安全（高空抛物）",
        "Building safety (objects thrown from height)",
        "community",
        ("high_altitude_throwing",),
    ),
    ServiceInfo("group_rental", "群租", "Group rental", "community"),
    ServiceInfo("sensor_maintenance", "感知设备维护", "Sensor maintenance", "infrastructure"),
    ServiceInfo("building_repair", "房屋维修", "Building repair", "housing"),
    ServiceInfo("property_management", "物业管理", "Property management", "housing"),
    ServiceInfo("elevator_fault", "电梯故障", "Elevator fault", "housing"),
    ServiceInfo("unsafe_building", "危险房屋", "Unsafe building", "housing"),
    ServiceInfo("street_vending", "占道经营", "Street vending", "urban_management"),
    ServiceInfo("illegal_construction", "违法搭建", "Illegal construction", "urban_management"),
    ServiceInfo("illegal_advertising", "违规广告", "Illegal advertising", "urban_management"),
    ServiceInfo("food_safety", "食品安全", "Food safety", "market"),
    ServiceInfo("price_complaint", "价格投诉", "Price complaint", "market"),
    ServiceInfo("unlicensed_business", "无证经营", "Unlicensed business", "market"),
    ServiceInfo("product_quality", "产品质量", "Product quality", "market"),
    ServiceInfo("water_leak", "漏水", "Water leak", "water"),
    ServiceInfo("blocked_drain", "下水道堵塞", "Blocked drain", "water"),
    ServiceInfo("street_flooding", "道路积水", "Street flooding", "water"),
    ServiceInfo("air_pollution", "空气污染", "Air pollution", "environment"),
    ServiceInfo("water_pollution", "水污染", "Water pollution", "environment"),
)

CATALOGUE: dict[str, ServiceInfo] = {s.code: s for s in _SERVICES}
COMMUNITY_CODES: frozenset[str] = frozenset({"building_safety", "group_rental"})
BUILDING_SAFETY = "building_safety"
SENSOR_MAINTENANCE = "sensor_maintenance"


def info(code: str) -> ServiceInfo:
    """The catalogue entry of ``code`` (a plain entry named by the code when unknown)."""
    found = CATALOGUE.get(code)
    if found is not None:
        return found
    label = code.replace("_", " ")
    return ServiceInfo(code, label, label.capitalize(), "other")
