"""Partitions of rule state across worker processes: keys, leases, checkpoints.

**Partition key.** Every valid event is routed to partition
``partition_of(partition_key(place), N)``. The key is the sensor's *place*: its compound
when the registry has one, otherwise the H3 parent cell (resolution
:data:`DEFAULT_H3_RESOLUTION`, ~5 km²) of the sensor's cell. Rule keys (a building, a
zone, a door, a meter, a sensor, an ``h3@12`` cell) lie inside one place, so every window
of such a rule is seen by one engine and never split across processes. Limit: a rule keyed
on something wider than a place (a whole district, a key shared by sensors of two
compounds, or a place on both sides of an H3 res-7 border) sees each partition's events
separately; such rules belong in a single-partition deployment.

**Leases** (``sensing_partition_leases``): a worker owns partition *p* of a group while its
lease is unexpired; it renews all its leases every ``ttl / 3``. Free or expired partitions
are taken up to the fair share ``ceil(N / live workers)`` (live = ``sensing_workers`` rows
with an unexpired heartbeat); a worker above its share releases the surplus. Each takeover
increments the lease's ``epoch``; :func:`fence` in the checkpoint transaction refuses the
write of an owner that lost the lease (:class:`LeaseLost`), so a stalled process cannot
overwrite its successor's state.

**Checkpoints** (``sensing_rule_checkpoints``): the partition engine's snapshot and the
last partition-stream sequence it includes, written in the same transaction as the alerts
of the batch. These functions take a session and never commit.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import h3
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from safecity.platform.db import utcnow
from safecity.sensing.partition_models import PartitionLease, RuleCheckpoint, SensingWorker
from safecity.sensing.pipeline import SensorPlace

__all__ = [
    "DEFAULT_H3_RESOLUTION",
    "LeaseLost",
    "acquire",
    "ensure_partitions",
    "fair_share",
    "fence",
    "heartbeat",
    "leave",
    "load_checkpoint",
    "owned",
    "partition_key",
    "release",
    "save_checkpoint",
]

DEFAULT_H3_RESOLUTION: Final = 7


class LeaseLost(Exception):
    """This worker no longer owns the partition (another worker took it over)."""


def partition_key(place: SensorPlace, *, resolution: int = DEFAULT_H3_RESOLUTION) -> str:
    """The place whose events one partition sees: ``c:<compound>`` or ``h:<H3 parent>``."""
    if place.compound:
        return f"c:{place.compound}"
    cell = place.h3
    try:
        if h3.get_resolution(cell) > resolution:
            cell = h3.cell_to_parent(cell, resolution)
    except (ValueError, TypeError, h3.H3BaseException):
        cell = h3.latlng_to_cell(place.lat, place.lng, resolution)
    return f"h:{cell}"


# --------------------------------------------------------------------------- workers


def heartbeat(session: Session, *, group: str, owner: str, ttl: float) -> int:
    """Record that ``owner`` is alive; returns the number of live workers of the group."""
    now = utcnow()
    expires = now + timedelta(seconds=ttl)
    row = session.get(SensingWorker, (group, owner))
    if row is None:
        session.add(
            SensingWorker(
                group_name=group, owner=owner, started_at=now, heartbeat_at=now, expires_at=expires
            )
        )
    else:
        row.heartbeat_at, row.expires_at = now, expires
    session.flush()
    live = session.scalar(
        select(func.count())
        .select_from(SensingWorker)
        .where(SensingWorker.group_name == group, SensingWorker.expires_at > now)
    )
    return max(1, int(live or 0))


def fair_share(partitions: int, live_workers: int) -> int:
    return math.ceil(partitions / max(1, live_workers))


def leave(session: Session, *, group: str, owner: str) -> None:
    """Release every lease of ``owner`` and forget the worker (a clean shutdown)."""
    session.execute(
        update(PartitionLease)
        .where(PartitionLease.group_name == group, PartitionLease.owner == owner)
        .values(owner=None, expires_at=None)
    )
    session.execute(
        delete(SensingWorker).where(SensingWorker.group_name == group, SensingWorker.owner == owner)
    )


# --------------------------------------------------------------------------- leases


def ensure_partitions(session: Session, *, group: str, partitions: int) -> None:
    """Create the lease rows 0..partitions-1 that are missing (IntegrityError on a race:
    the caller retries its transaction)."""
    have = set(
        session.scalars(
            select(PartitionLease.partition).where(PartitionLease.group_name == group)
        ).all()
    )
    for p in range(partitions):
        if p not in have:
            session.add(PartitionLease(group_name=group, partition=p, epoch=0))
    session.flush()


def owned(session: Session, *, group: str, owner: str, ttl: float) -> dict[int, int]:
    """Renew ``owner``'s leases; returns partition → epoch of those it still holds."""
    now = utcnow()
    session.execute(
        update(PartitionLease)
        .where(PartitionLease.group_name == group, PartitionLease.owner == owner)
        .values(expires_at=now + timedelta(seconds=ttl), heartbeat_at=now)
    )
    rows = session.execute(
        select(PartitionLease.partition, PartitionLease.epoch).where(
            PartitionLease.group_name == group, PartitionLease.owner == owner
        )
    ).all()
    return {int(p): int(e) for p, e in rows}


def takeable(session: Session, *, group: str, owner: str, partitions: int) -> list[int]:
    """Partitions (< ``partitions``) that are free, expired or already ``owner``'s."""
    now = utcnow()
    rows = session.execute(
        select(PartitionLease.partition, PartitionLease.owner, PartitionLease.expires_at)
        .where(PartitionLease.group_name == group, PartitionLease.partition < partitions)
        .order_by(PartitionLease.partition)
    ).all()
    return [
        int(p)
        for p, who, expires in rows
        if who is None or who == owner or expires is None or _expired(expires, now)
    ]


def _expired(expires: datetime, now: datetime) -> bool:
    return expires <= now


def acquire(session: Session, *, group: str, owner: str, partition: int, ttl: float) -> int | None:
    """Take the lease if it is free, expired or ours; returns the new epoch (or None)."""
    now = utcnow()
    lease = session.get(PartitionLease, (group, partition), with_for_update=True)
    if lease is None:
        return None
    if (
        lease.owner is not None
        and lease.owner != owner
        and lease.expires_at is not None
        and not _expired(lease.expires_at, now)
    ):
        return None
    lease.owner = owner
    lease.epoch += 1
    lease.expires_at = now + timedelta(seconds=ttl)
    lease.heartbeat_at = now
    session.flush()
    return lease.epoch


def release(session: Session, *, group: str, owner: str, partition: int) -> None:
    session.execute(
        update(PartitionLease)
        .where(
            PartitionLease.group_name == group,
            PartitionLease.partition == partition,
            PartitionLease.owner == owner,
        )
        .values(owner=None, expires_at=None)
    )


def fence(
    session: Session, *, group: str, owner: str, partition: int, epoch: int, ttl: float
) -> None:
    """Inside a checkpoint transaction: raise :class:`LeaseLost` unless ``owner`` still holds
    the lease at ``epoch`` (the row update also locks it against a concurrent takeover)."""
    now = utcnow()
    result = session.execute(
        update(PartitionLease)
        .where(
            PartitionLease.group_name == group,
            PartitionLease.partition == partition,
            PartitionLease.owner == owner,
            PartitionLease.epoch == epoch,
        )
        .values(expires_at=now + timedelta(seconds=ttl), heartbeat_at=now)
    )
    if getattr(result, "rowcount", 0) != 1:
        raise LeaseLost(f"partition {partition} of {group} is no longer owned by {owner}")


# --------------------------------------------------------------------------- checkpoints


def load_checkpoint(
    session: Session, *, group: str, partition: int
) -> tuple[dict[str, Any] | None, int]:
    """The partition's last snapshot (or None) and the stream sequence it covers."""
    row = session.get(RuleCheckpoint, (group, partition))
    if row is None:
        return None, 0
    snapshot: dict[str, Any] = json.loads(zlib.decompress(row.snapshot))
    return snapshot, int(row.stream_seq)


def save_checkpoint(
    session: Session,
    *,
    group: str,
    partition: int,
    owner: str,
    epoch: int,
    snapshot: Mapping[str, Any],
    stream_seq: int,
    events: int,
) -> None:
    data = zlib.compress(json.dumps(snapshot, separators=(",", ":")).encode(), 1)
    row = session.get(RuleCheckpoint, (group, partition))
    now = utcnow()
    if row is None:
        session.add(
            RuleCheckpoint(
                group_name=group,
                partition=partition,
                stream_seq=stream_seq,
                snapshot=data,
                epoch=epoch,
                owner=owner,
                events=events,
                updated_at=now,
            )
        )
    else:
        row.stream_seq, row.snapshot, row.epoch, row.owner = stream_seq, data, epoch, owner
        row.events, row.updated_at = events, now
    session.flush()


def checkpoints(session: Session, *, group: str) -> dict[int, tuple[int, int]]:
    """partition → (stream sequence, events) of every checkpoint of the group."""
    rows = session.execute(
        select(RuleCheckpoint.partition, RuleCheckpoint.stream_seq, RuleCheckpoint.events).where(
            RuleCheckpoint.group_name == group
        )
    ).all()
    return {int(p): (int(s), int(n)) for p, s, n in rows}
