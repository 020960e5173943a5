"""Tables of the partitioned rule stage (NATS worker group, see ``sensing/partitions.py``).

* ``sensing_workers``: one row per live worker process of a group (its heartbeat), so the
  fair share of partitions is ``ceil(partitions / live workers)``;
* ``sensing_partition_leases``: who owns partition *p* of a group until when; ``epoch``
  grows at every takeover and fences the checkpoint writes of an owner that lost it;
* ``sensing_rule_checkpoints``: the rule engine's snapshot of partition *p* and the
  partition stream's sequence it covers, written in the same transaction as the alerts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from safecity.platform.db import Base, UTCDateTime, utcnow

MAX_GROUP = 100
MAX_OWNER = 100


class SensingWorker(Base):
    __tablename__ = "sensing_workers"

    group_name: Mapped[str] = mapped_column(String(MAX_GROUP), primary_key=True)
    owner: Mapped[str] = mapped_column(String(MAX_OWNER), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PartitionLease(Base):
    __tablename__ = "sensing_partition_leases"

    group_name: Mapped[str] = mapped_column(String(MAX_GROUP), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    owner: Mapped[str | None] = mapped_column(String(MAX_OWNER), default=None)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RuleCheckpoint(Base):
    __tablename__ = "sensing_rule_checkpoints"

    group_name: Mapped[str] = mapped_column(String(MAX_GROUP), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    stream_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    """Last sequence of the partition stream whose event the snapshot includes."""
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    """zlib-compressed JSON of ``RuleEngine.snapshot()``."""
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str | None] = mapped_column(String(MAX_OWNER), default=None)
    events: Mapped[int] = mapped_column(BigInteger, default=0)
    """Events this partition's engines processed in total (status display)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
