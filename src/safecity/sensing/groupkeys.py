"""HTTP ingest keys per device group.

A key is a ``device`` principal (role ``device``, bearer token) bound to one device group in
``sensing_group_keys``. ``POST /api/ingest/events`` with such a key accepts events only from
sensors whose ``Sensor.device_group`` is that group; any other registered sensor's event is
rejected on its own (reason ``wrong_group``, dead-lettered), never the whole batch. A device
principal without a binding (older keys) may post for any sensor, as before.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.errors import InvalidInput
from safecity.security import audit
from safecity.security.auth import issue_token
from safecity.security.models import User, UserRole
from safecity.security.rbac import Principal, grant
from safecity.sensing.connectors.deadletter import DeadLetter
from safecity.sensing.models import MAX_GROUP
from safecity.sensing.ops_models import GroupKey
from safecity.sensing.pipeline import ItemRejection, Pipeline

__all__ = ["IssuedKey", "group_of", "issue_key", "split_by_group"]

KEYS: Final = "sensing:keys"
_GROUP = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{MAX_GROUP - 1}}}$")

grant("admin", KEYS)


@dataclass(frozen=True)
class IssuedKey:
    user_id: str
    username: str
    device_group: str
    token: str
    """Plaintext bearer token, shown once."""


def issue_key(
    session: Session,
    *,
    group: str,
    actor: Principal,
    org_id: str | None = None,
    name: str = "",
    ttl: timedelta | None = None,
) -> IssuedKey:
    """Create a device principal bound to ``group`` and a bearer token for it."""
    if not _GROUP.match(group):
        raise InvalidInput(
            f"device group must be 1-{MAX_GROUP} letters, digits or . _ : - (got {group[:40]!r})"
        )
    if len(name) > 200:
        raise InvalidInput("key name is too long (200 characters at most)")
    if org_id is None:  # the actor's org, else the top of the tree (the CLI's system actor)
        org_id = actor.org_id or session.scalar(
            select(Org.id).where(Org.parent_id.is_(None)).order_by(Org.created_at).limit(1)
        )
        if org_id is None:
            raise InvalidInput("no organisation exists yet; import the org tree first")
    orgs.get(session=session, org_id=org_id)
    username = f"key-{group.lower()[:40]}-{secrets.token_hex(4)}"
    user = User(
        username=username,
        display_name=name or f"ingest key {group}",
        kind="device",
        org_id=org_id,
    )
    session.add(user)
    session.flush()
    session.add(UserRole(user_id=user.id, role="device"))
    session.add(GroupKey(user_id=user.id, device_group=group, created_by=actor.id))
    token = issue_token(session=session, user_id=user.id, name=name or f"group {group}", ttl=ttl)
    audit.record(
        session,
        principal=actor,
        action="sensing.key.issue",
        target_type="user",
        target_id=user.id,
        detail={"device_group": group, "org_id": org_id},
    )
    return IssuedKey(user_id=user.id, username=username, device_group=group, token=token)


def group_of(session: Session, *, principal_id: str) -> str | None:
    """The device group a principal's key is bound to (``None``: not bound)."""
    return session.scalar(select(GroupKey.device_group).where(GroupKey.user_id == principal_id))


def split_by_group(
    pipeline: Pipeline, items: Sequence[Any], *, group: str, source: str
) -> tuple[list[Any], list[int], list[ItemRejection]]:
    """Items a ``group`` key may post, their original positions, and the rejected ones
    (registered sensors of another group; sent to the pipeline's dead letters here).
    Malformed items and unknown sensors pass through: the pipeline rejects them itself."""
    kept: list[Any] = []
    positions: list[int] = []
    rejected: list[ItemRejection] = []
    letters: list[DeadLetter] = []
    for index, item in enumerate(items):
        sid = item.get("sensor_id") if isinstance(item, dict) else None
        place = pipeline.cache.get(sid) if isinstance(sid, str) else None
        if place is not None and place.group != group:
            detail = f"sensor {sid} is not in device group {group}"
            rejected.append(ItemRejection(index, "wrong_group", detail))
            etype = item.get("type")
            letters.append(
                DeadLetter(
                    connector=pipeline.connector,
                    reason="wrong_group",
                    detail=detail,
                    source=source,
                    raw=b"",
                    sensor_id=sid,
                    type=etype if isinstance(etype, str) else None,
                )
            )
            continue
        kept.append(item)
        positions.append(index)
    if letters:
        pipeline.dead_letters.put(letters)
    return kept, positions, rejected
