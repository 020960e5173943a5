"""The NATS worker: stage A (ingest) and stage B (rules per partition) in one process.

Several processes started with the same prefix form one group (``safecity sensors
nats-worker``). Stage A is :class:`~safecity.sensing.connectors.nats.IngestStage`. Stage B:

* the lease loop (every ``lease_ttl / 3``) heartbeats the worker, renews its leases, takes
  free or expired partitions up to the fair share and releases the surplus (see
  :mod:`safecity.sensing.partitions`);
* each owned partition runs a :class:`PartitionRunner`: one
  :class:`~safecity.sensing.rules.RuleEngine` restored from the partition's checkpoint, a
  durable pull consumer ``part-<p>-e<epoch>`` on ``<prefix>.part.<p>`` (re)created at the
  checkpoint's stream sequence + 1, and a :class:`~safecity.sensing.pipeline.Pipeline`
  that turns matches into alerts. A batch with alert matches commits its alerts, the
  engine snapshot and the stream sequence in **one** transaction (fenced by the lease
  epoch), then acks (AckPolicy.ALL: one ack covers the batch); batches without alerts are
  checkpointed at most every ``checkpoint_interval_s`` and acked then.

After a crash or a takeover the new owner restores the snapshot and reads the stream from
the checkpoint's sequence: events already in the snapshot are not read again, so no match
(and no alert) is produced twice, and events after it are read again, so none is lost.
Any failure of a batch (database down, a hole in the consumer's delivery numbers after a
lost connection) resets the runner the same way; a lost lease stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from safecity.sensing import partitions as leases
from safecity.sensing.connectors.deadletter import DeadLetterSink, MemoryDeadLetterSink
from safecity.sensing.connectors.nats import IngestStage, NatsConfig, connect, ensure_streams
from safecity.sensing.pipeline import Pipeline, SensorCache
from safecity.sensing.rules import RuleEngine, RuleSet

__all__ = ["NatsWorker", "PartitionRunner", "default_worker_id"]

log = logging.getLogger(__name__)

TIMER_INTERVAL_S = 5.0
"""With no traffic, a partition moves its engine's clock this often (absence rules)."""
TIMER_LAG_S = 5.0
"""... to wall-clock time minus this (each rule adds its own lateness on top)."""

RulesetProvider = Callable[[], RuleSet]


def default_worker_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class RunnerStats:
    events: int = 0
    alerts: int = 0
    checkpoints: int = 0
    resets: int = 0
    last_seq: int = 0


class DeliveryGap(Exception):
    """A delivery of the partition consumer went missing (e.g. lost with a connection)."""


class PartitionRunner:
    """One owned partition: restore, consume, checkpoint with the alerts, ack."""

    def __init__(self, worker: NatsWorker, partition: int, epoch: int) -> None:
        self.worker = worker
        self.partition = partition
        self.epoch = epoch
        self.stats = RunnerStats()
        self.lost = False
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pipeline: Pipeline | None = None
        self._engine: RuleEngine | None = None
        self._processed_seq = 0  # highest stream sequence fed to the engine
        self._checkpoint_seq = 0  # highest stream sequence in the stored checkpoint
        self._last_checkpoint = 0.0
        self._last_tick = 0.0
        self._unacked: Msg | None = None  # newest processed message not yet acked
        self._total_events = 0  # events included in the stored checkpoint
        self._pending_events = 0  # processed since the last checkpoint
        self._next_dseq = 1  # the consumer sequence the next delivery must carry

    @property
    def consumer(self) -> str:
        return f"part-{self.partition}-e{self.epoch}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"nats-part-{self.partition}")

    async def stop(self, *, final: bool = True) -> None:
        """Stop after the current batch; ``final`` writes a last checkpoint and acks."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if final and not self.lost and self._processed_seq > self._checkpoint_seq:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._checkpoint_only)
                await self._ack()

    # -- setup --------------------------------------------------------------------------

    def _restore(self) -> None:
        w = self.worker
        with w.sessions() as session:
            snapshot, seq = leases.load_checkpoint(
                session, group=w.config.group, partition=self.partition
            )
            self._total_events = 0
            if snapshot is not None:
                row = leases.checkpoints(session, group=w.config.group).get(self.partition)
                self._total_events = row[1] if row else 0
        engine = RuleEngine(w.ruleset(), future_tolerance=120.0)
        if snapshot is not None:
            engine.restore(snapshot)
        self._engine = engine
        self._pipeline = Pipeline(
            sessions=w.sessions,
            engine=engine,
            cache=w.cache,
            dead_letters=w.dead_letters,
            connector="nats",
        )
        self._processed_seq = self._checkpoint_seq = seq
        self._last_checkpoint = time.monotonic()
        self._unacked = None

    async def _bind(self) -> JetStreamContext.PullSubscription:
        js, cfg = self.worker.js, self.worker.config
        stream = cfg.parts_stream
        prefix = f"part-{self.partition}-e"
        with contextlib.suppress(Exception):
            for info in await js.consumers_info(stream):
                name = info.name
                if name.startswith(prefix) and name != self.consumer:
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await js.delete_consumer(stream, name)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(stream, self.consumer)
        last = (await js.stream_info(stream)).state.last_seq
        if last < self._checkpoint_seq:  # the stream was recreated under the checkpoints
            log.error(
                "partition %d: checkpoint at sequence %d but %s ends at %d: delete the "
                "group's sensing_rule_checkpoints rows when recreating the stream",
                self.partition,
                self._checkpoint_seq,
                stream,
                last,
            )
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=self.consumer,
                filter_subject=cfg.part_subject(self.partition),
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=self._checkpoint_seq + 1,
                ack_policy=AckPolicy.ALL,
                ack_wait=max(cfg.ack_wait_s, cfg.checkpoint_interval_s * 4),
                max_deliver=-1,
                max_ack_pending=-1,
                inactive_threshold=3600.0,
            ),
        )
        self._next_dseq = 1
        return await js.pull_subscribe_bind(durable=self.consumer, stream=stream)

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        psub: JetStreamContext.PullSubscription | None = None
        while not self._stop.is_set() and not self.lost:
            try:
                if psub is None:
                    await asyncio.to_thread(self._restore)
                    psub = await self._bind()
                    failures = 0
                await self._step(psub)
            except leases.LeaseLost:
                log.warning("partition %d: lease lost; stopping", self.partition)
                self.lost = True
            except Exception as exc:
                failures += 1
                self.stats.resets += 1
                log.warning(
                    "partition %d: %s: %s; restoring from the checkpoint",
                    self.partition,
                    type(exc).__name__,
                    exc,
                )
                if psub is not None:
                    with contextlib.suppress(Exception):
                        await psub.unsubscribe()
                psub = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(5.0, 0.2 * 2**failures))
        if psub is not None:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()

    async def _step(self, psub: JetStreamContext.PullSubscription) -> None:
        cfg = self.worker.config
        began = time.monotonic()
        try:
            msgs = await psub.fetch(cfg.batch_size, timeout=cfg.fetch_timeout_s)
        except (nats.errors.TimeoutError, TimeoutError):
            msgs = []
        if 0 < len(msgs) < cfg.batch_size:  # linger: fewer, larger batches
            rest = cfg.batch_max_wait_s - (time.monotonic() - began)
            if rest > 0:
                await asyncio.sleep(rest)
        events: list[dict[str, Any]] = []
        newest: Msg | None = None
        for m in msgs:
            seq, dseq = m.metadata.sequence.stream, m.metadata.sequence.consumer
            if dseq != self._next_dseq:
                # Deliveries are numbered without holes (redeliveries get new numbers): a
                # hole means messages were lost in transit and would come back out of
                # order, so start again from the checkpoint.
                raise DeliveryGap(f"consumer sequence {dseq}, expected {self._next_dseq}")
            self._next_dseq = dseq + 1
            if seq <= self._processed_seq:
                continue  # a redelivery of what the engine already has
            newest = m
            try:
                body = json.loads(m.data)
            except ValueError:
                log.error("partition %d: undecodable message at seq %d", self.partition, seq)
                continue
            if isinstance(body, list):  # the ingest stage's bundle for this partition
                events.extend(e for e in body if isinstance(e, dict))
            elif isinstance(body, dict):
                events.append(body)
        due = time.monotonic() - self._last_checkpoint >= cfg.checkpoint_interval_s
        if newest is None:
            if time.monotonic() - self._last_tick >= TIMER_INTERVAL_S:
                self._last_tick = time.monotonic()
                if await asyncio.to_thread(self._tick, time.time() - TIMER_LAG_S):
                    await self._ack()
                    return
            if due and self._processed_seq > self._checkpoint_seq:
                await asyncio.to_thread(self._checkpoint_only)
                await self._ack()
            return
        seq = newest.metadata.sequence.stream
        checkpointed = await asyncio.to_thread(self._process, events, seq, due)
        self._processed_seq = seq
        self._unacked = newest
        self.stats.last_seq = seq
        if checkpointed:
            await self._ack()

    def _process(self, events: list[dict[str, Any]], seq: int, due: bool) -> bool:
        """Run the batch; True when it was checkpointed (with its alerts)."""
        pipeline, engine = self._pipeline, self._engine
        assert pipeline is not None
        assert engine is not None
        current = self.worker.ruleset()
        if current is not engine.ruleset:
            log.info("partition %d: rules reloaded: %s", self.partition, engine.reload(current))
        done: list[bool] = []

        def checkpoint(session: Session) -> None:
            self._write_checkpoint(session, seq, len(events))
            done.append(True)

        result = pipeline.process_ready(events, also=checkpoint, force=due)
        self.stats.events += len(events)
        self.stats.alerts += len(result.alerts)
        if done:
            self._checkpoint_seq = seq
            self._total_events += self._pending_events + len(events)
            self._last_checkpoint = time.monotonic()
            self.stats.checkpoints += 1
            self._pending_events = 0
        else:
            self._pending_events += len(events)
        return bool(done)

    def _write_checkpoint(self, session: Session, seq: int, new_events: int) -> None:
        w, engine = self.worker, self._engine
        assert engine is not None
        leases.fence(
            session,
            group=w.config.group,
            owner=w.worker_id,
            partition=self.partition,
            epoch=self.epoch,
            ttl=w.config.lease_ttl_s,
        )
        snapshot = engine.snapshot()
        keep = w.config.checkpoint_seen
        snapshot["seen"] = snapshot["seen"][-keep:] if keep else []
        pending = self._pending_events
        leases.save_checkpoint(
            session,
            group=w.config.group,
            partition=self.partition,
            owner=w.worker_id,
            epoch=self.epoch,
            snapshot=snapshot,
            stream_seq=seq,
            events=self._total_events + pending + new_events,
        )

    def _tick(self, watermark: float) -> bool:
        """No traffic: move the engine's clock to ``watermark`` so absence rules fire; their
        alerts and a checkpoint commit together. True when something was written."""
        pipeline = self._pipeline
        assert pipeline is not None
        seq = self._processed_seq
        done: list[bool] = []

        def checkpoint(session: Session) -> None:
            self._write_checkpoint(session, seq, 0)
            done.append(True)

        result = pipeline.advance_ready(watermark, also=checkpoint)
        self.stats.alerts += len(result.alerts)
        if done:
            self._checkpoint_seq = seq
            self._total_events += self._pending_events
            self._pending_events = 0
            self._last_checkpoint = time.monotonic()
            self.stats.checkpoints += 1
        return bool(done)

    def _checkpoint_only(self) -> None:
        seq = self._processed_seq
        with self.worker.sessions.begin() as session:
            self._write_checkpoint(session, seq, 0)
        self._checkpoint_seq = seq
        self._total_events += self._pending_events
        self._pending_events = 0
        self._last_checkpoint = time.monotonic()
        self.stats.checkpoints += 1

    async def _ack(self) -> None:
        msg, self._unacked = self._unacked, None
        if msg is not None:
            with contextlib.suppress(Exception):  # unacked: redelivered, skipped by seq
                await msg.ack()


class NatsWorker:
    """Both stages of one process of a NATS worker group."""

    def __init__(
        self,
        config: NatsConfig,
        *,
        sessions: sessionmaker[Session],
        worker_id: str | None = None,
        ruleset_provider: RulesetProvider | None = None,
        dead_letters: DeadLetterSink | None = None,
        cache: SensorCache | None = None,
        ingest: bool = True,
        rules: bool = True,
    ) -> None:
        """``ingest`` / ``rules`` switch the stages: e.g. one ingest-only process beside
        rules-only ones spreads the two stages over cores (a rules-only process is a
        member of the group; an ingest-only one leases nothing)."""
        self.config = config
        self.sessions = sessions
        self.worker_id = worker_id or default_worker_id()
        shipped: RuleSet | None = None

        def shipped_rules() -> RuleSet:
            nonlocal shipped
            if shipped is None:
                shipped = RuleSet.shipped()
            return shipped

        self.ruleset: RulesetProvider = ruleset_provider or shipped_rules
        self.dead_letters = dead_letters or MemoryDeadLetterSink()
        self.cache = cache or SensorCache(sessions)
        self.with_ingest = ingest
        self.with_rules = rules
        self.runners: dict[int, PartitionRunner] = {}
        self.live_workers = 1
        self.ingest: IngestStage | None = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._stop = asyncio.Event()
        self._ingest_tasks: list[asyncio.Task[None]] = []

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "worker not started"
        return self._js

    async def start(self) -> None:
        self._nc = await connect(self.config.url, name=f"safecity-{self.worker_id}")
        self._js = self._nc.jetstream()
        await ensure_streams(self._js, self.config)
        await asyncio.to_thread(self.cache.refresh)
        if self.with_ingest:
            self.ingest = IngestStage(
                self._js, self.config, cache=self.cache, dead_letters=self.dead_letters
            )
            self._ingest_tasks = [
                asyncio.create_task(self.ingest.run(self._stop), name=f"ingest-{i}")
                for i in range(self.config.ingest_tasks)
            ]

    async def run(self, *, on_tick: Callable[[NatsWorker], None] | None = None) -> None:
        """Start, then keep the leases until :meth:`stop` (or cancellation)."""
        if self._nc is None:
            await self.start()
        interval = self.config.lease_ttl_s / 3
        try:
            while not self._stop.is_set():
                try:
                    if self.with_rules:
                        await self.balance()
                except Exception as exc:
                    log.warning("lease round failed: %s: %s", type(exc).__name__, exc)
                if on_tick is not None:
                    on_tick(self)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), interval)
        finally:
            await self.shutdown()

    def stop(self) -> None:
        self._stop.set()

    async def balance(self) -> None:
        """One lease round: heartbeat, renew, drop lost, release surplus, take free."""
        for p in [p for p, r in self.runners.items() if r.lost]:
            await self.runners.pop(p).stop(final=False)
        held, share, free = await asyncio.to_thread(self._lease_round)
        for p in [p for p in self.runners if p not in held]:
            log.warning("partition %d: lease expired or taken; stopping", p)
            await self.runners.pop(p).stop(final=False)
        mine = sorted(self.runners)
        surplus = mine[len(mine) - max(0, len(mine) - share) :] if len(mine) > share else []
        for p in surplus:
            await self.runners.pop(p).stop(final=True)
            await asyncio.to_thread(self._release, p)
        room = share - len(self.runners)
        # leases this worker id still holds (a restart under the same id) come first
        candidates = sorted(
            (p for p in free if p not in self.runners), key=lambda p: (p not in held, p)
        )
        for p in candidates[: max(0, room)]:
            epoch = await asyncio.to_thread(self._acquire, p)
            if epoch is not None:
                runner = PartitionRunner(self, p, epoch)
                self.runners[p] = runner
                runner.start()

    def _lease_round(self) -> tuple[dict[int, int], int, list[int]]:
        cfg = self.config
        for attempt in (1, 2, 3):
            try:
                with self.sessions.begin() as session:
                    live = leases.heartbeat(
                        session, group=cfg.group, owner=self.worker_id, ttl=cfg.lease_ttl_s
                    )
                    leases.ensure_partitions(session, group=cfg.group, partitions=cfg.partitions)
                    held = leases.owned(
                        session, group=cfg.group, owner=self.worker_id, ttl=cfg.lease_ttl_s
                    )
                    free = leases.takeable(
                        session, group=cfg.group, owner=self.worker_id, partitions=cfg.partitions
                    )
                break
            except (IntegrityError, OperationalError):
                if attempt == 3:
                    raise
                time.sleep(0.05 * attempt)
        self.live_workers = live
        return held, leases.fair_share(cfg.partitions, live), free

    def _acquire(self, partition: int) -> int | None:
        with self.sessions.begin() as session:
            return leases.acquire(
                session,
                group=self.config.group,
                owner=self.worker_id,
                partition=partition,
                ttl=self.config.lease_ttl_s,
            )

    def _release(self, partition: int) -> None:
        with self.sessions.begin() as session:
            leases.release(
                session, group=self.config.group, owner=self.worker_id, partition=partition
            )

    async def shutdown(self) -> None:
        """Stop ingest, checkpoint and release every partition, leave the group."""
        self._stop.set()
        tasks, self._ingest_tasks = self._ingest_tasks, []
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, self.config.fetch_timeout_s + 30)
        for p in list(self.runners):
            await self.runners.pop(p).stop(final=True)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._leave)
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.drain()

    def _leave(self) -> None:
        with self.sessions.begin() as session:
            leases.leave(session, group=self.config.group, owner=self.worker_id)

    def status(self) -> dict[str, Any]:
        ingest = self.ingest.counters if self.ingest is not None else None
        return {
            "worker": self.worker_id,
            "live_workers": self.live_workers,
            "partitions": sorted(self.runners),
            "ingest": None
            if ingest is None
            else {
                "received": ingest.received,
                "accepted": ingest.accepted,
                "rejected": ingest.rejected,
                "failures": ingest.failures,
            },
            "events": sum(r.stats.events for r in self.runners.values()),
            "alerts": sum(r.stats.alerts for r in self.runners.values()),
            "checkpoints": sum(r.stats.checkpoints for r in self.runners.values()),
            "resets": sum(r.stats.resets for r in self.runners.values()),
        }
