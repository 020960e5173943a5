"""Helpers for the rule-engine tests: small rule files and event builders."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from safecity.sensing.rules import RuleSet
from safecity.sensing.rules_schema import parse_rule_text

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
_ids = itertools.count(1)


def ruleset(*rules: dict[str, Any]) -> RuleSet:
    text = yaml.safe_dump({"version": 1, "rules": list(rules)})
    return RuleSet([parse_rule_text(text, source="test.yaml")], source="test.yaml")


def rule(id: str, kind: str, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": id,
        "kind": kind,
        "alert": {"title": f"alerts.{id}", "category": "test"},
    }
    out.update(fields)
    return out


def ev(
    etype: str,
    at: float | datetime,
    *,
    id: str | None = None,
    sensor_id: str = "s1",
    lat: float | None = 31.2304,
    lng: float | None = 121.4737,
    h3: str | None = None,
    org_id: str | None = "org1",
    **payload: Any,
) -> dict[str, Any]:
    """An event ``at`` seconds after :data:`T0` (or at a datetime)."""
    when = at if isinstance(at, datetime) else T0 + timedelta(seconds=at)
    return {
        "id": id or f"e{next(_ids)}",
        "type": etype,
        "sensor_id": sensor_id,
        "time": when,
        "lat": lat,
        "lng": lng,
        "h3": h3,
        "org_id": org_id,
        "payload": payload,
    }
