"""Synthetic certificate holders and claims shared by the e-services benchmarks."""

from __future__ import annotations

from typing import Any

from safecity.security.rbac import Principal


def holder(i: int) -> Principal:
    """The ``i``-th synthetic citizen (a principal of role citizen, no org)."""
    return Principal(
        id=f"citizen{i:07d}",
        kind="user",
        username=f"citizen{i}",
        roles=frozenset({"citizen"}),
        org_id="",
        visible_org_ids=frozenset(),
    )


def claims(i: int) -> dict[str, Any]:
    """No-criminal-record claims of the ``i``-th synthetic citizen."""
    return {
        "family_name": "王李张刘陈"[i % 5],
        "given_name": f"小明{i % 100}",
        "birthdate": f"19{60 + i % 40}-0{1 + i % 9}-1{i % 10}",
        "id_number": f"3101011990{i % 10000:04d}{i % 9999:04d}",
        "attributes": {"result": "无犯罪记录", "query_scope": "全国", "purpose": "就业"},
    }
