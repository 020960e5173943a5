"""Versioned rule sets: publish, audit, roll back, and hot reload in every process.

    publish(session, yaml_text=..., actor=..., note="...")   # validate all, store, audit, emit
    version, ruleset = active(session)                        # 0 = the shipped starter set
    watcher = RuleWatcher(runtime.sessions, interval_s=5)    # one per process
    report = watcher.poll(engine)                             # reloads when a new version is out

A file with any error is rejected as a whole (:class:`InvalidInput`, 422, with every error
listed in ``errors``); nothing is stored and the running rules stay. A rollback publishes an
earlier version's text again, so the active version is always the newest one and a watcher
only has to compare ``max(version)`` every ``interval_s`` (one indexed query). A publish in
this process wakes this process's watchers at commit, so the next batch already runs the new
rules; other processes see it within ``interval_s``. A reload keeps the state of unchanged
rules (:meth:`RuleEngine.reload`); its report is logged.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from safecity.platform import outbox
from safecity.platform.errors import InvalidInput, NotFound
from safecity.platform.events import register_event_type
from safecity.platform.pagination import ListParams, ListSpec, Page, paginate
from safecity.security import audit
from safecity.security.rbac import Principal, grant
from safecity.sensing.ops_models import MAX_NOTE, RuleSetVersion
from safecity.sensing.rules import RuleEngine, RuleSet
from safecity.sensing.rules_schema import SHIPPED_DIR, parse_rule_text, rule_text_errors

__all__ = [
    "PUBLISHED",
    "RuleWatcher",
    "active",
    "diff",
    "get_version",
    "latest_version",
    "publish",
    "ruleset_of",
    "shipped_text",
]

log = logging.getLogger(__name__)

SOURCE: Final = "sensing"
PUBLISHED: Final = "sensing.rules.published"
READ: Final = "rules:read"
WRITE: Final = "rules:write"
MAX_YAML_CHARS: Final = 1_000_000
MAX_AUDIT_IDS: Final = 40

for _role in ("officer", "analyst", "supervisor", "admin"):
    grant(_role, READ)
for _role in ("supervisor", "admin"):
    grant(_role, WRITE)

_IDS = {"type": "array", "items": {"type": "string", "maxLength": 64}}
register_event_type(
    PUBLISHED,
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "sha256", "author_id", "rule_count", "kept", "changed", "added"],
        "properties": {
            "version": {"type": "integer", "minimum": 1},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "author_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "rule_count": {"type": "integer", "minimum": 0},
            "rollback_of": {"type": ["integer", "null"], "minimum": 0},
            "kept": {"type": "integer", "minimum": 0},
            "changed": _IDS,
            "added": _IDS,
            "removed": _IDS,
        },
    },
    description="A rule-set version was published (every process reloads it).",
)

# Watchers of this process, woken at the commit of a publish made here.
_local_generation = 0
_gen_lock = threading.Lock()
_parsed: dict[str, RuleSet] = {}
_parsed_lock = threading.Lock()


def _bump(_session: Session) -> None:
    global _local_generation
    with _gen_lock:
        _local_generation += 1


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shipped_text() -> str:
    """The YAML text of version 0 (the shipped starter rules)."""
    files = sorted(SHIPPED_DIR.glob("*.yaml"))
    return "\n".join(p.read_text(encoding="utf-8") for p in files[:1])


def ruleset_of(text: str, *, version: int) -> RuleSet:
    """The parsed rule set of a stored text (parsed once per text and process)."""
    digest = sha256_of(text)
    with _parsed_lock:
        found = _parsed.get(digest)
    if found is None:
        found = RuleSet([parse_rule_text(text, source=f"version {version}")])
        with _parsed_lock:
            if len(_parsed) > 32:
                _parsed.clear()
            _parsed[digest] = found
    return found


def diff(old: RuleSet, new: RuleSet) -> dict[str, list[str]]:
    """kept / changed / added / removed rule ids (enabled rules, by definition digest)."""
    before = {r.id: old.digests[r.id] for r in old.rules if r.enabled}
    after = {r.id: new.digests[r.id] for r in new.rules if r.enabled}
    return {
        "kept": sorted(i for i in after if before.get(i) == after[i]),
        "changed": sorted(i for i in after if i in before and before[i] != after[i]),
        "added": sorted(i for i in after if i not in before),
        "removed": sorted(i for i in before if i not in after),
    }


VERSION_LIST = ListSpec(
    sort={"version": RuleSetVersion.version, "created_at": RuleSetVersion.created_at},
    filters={"author_id": RuleSetVersion.author_id, "active": RuleSetVersion.active},
    default_sort="-version",
    max_limit=200,
)


def list_versions(*, session: Session, params: ListParams, item: Any) -> Page[Any]:
    return paginate(session=session, query=select(RuleSetVersion), params=params, item=item)


def latest_version(session: Session) -> int:
    """The active version: the newest published one, 0 (shipped) when none was."""
    return int(session.scalar(select(func.max(RuleSetVersion.version))) or 0)


def active(session: Session) -> tuple[int, RuleSet]:
    """The version every process should run and its parsed rules."""
    row = session.scalars(
        select(RuleSetVersion).order_by(RuleSetVersion.version.desc()).limit(1)
    ).first()
    if row is None:
        return 0, RuleSet.shipped()
    return row.version, ruleset_of(row.yaml_text, version=row.version)


def get_version(session: Session, *, version: int) -> RuleSetVersion:
    """One stored version; version 0 is the shipped set (a transient row, not stored)."""
    if version == 0:
        text = shipped_text()
        return RuleSetVersion(
            version=0,
            yaml_text=text,
            sha256=sha256_of(text),
            author_id="system",
            note="shipped starter rules",
            rule_count=len(RuleSet.shipped()),
            diff={},
            active=latest_version(session) == 0,
        )
    row = session.get(RuleSetVersion, version)
    if row is None:
        raise NotFound(f"rule-set version {version} not found")
    return row


def publish(
    session: Session,
    *,
    yaml_text: str,
    actor: Principal,
    note: str = "",
    rollback_of: int | None = None,
) -> RuleSetVersion:
    """Validate the whole file, store it as the new active version, audit and announce it.

    Any error → :class:`InvalidInput` with ``errors`` (every problem, one line each);
    nothing is written then and the running rules stay."""
    if len(yaml_text) > MAX_YAML_CHARS:
        raise InvalidInput(f"a rule file is at most {MAX_YAML_CHARS} characters")
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"note is longer than {MAX_NOTE} characters")
    errors = rule_text_errors(yaml_text, source="rules")
    if errors:
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidInput(f"rule file rejected: {errors[0]}{more}", errors=errors)
    previous, old = active(session)
    version = previous + 1
    new = ruleset_of(yaml_text, version=version)
    change = diff(old, new)
    session.execute(
        update(RuleSetVersion).where(RuleSetVersion.active.is_(True)).values(active=False)
    )
    row = RuleSetVersion(
        version=version,
        yaml_text=yaml_text,
        sha256=sha256_of(yaml_text),
        author_id=actor.id,
        note=note,
        rule_count=len(new),
        diff={**change, "previous": previous, "rollback_of": rollback_of},
        active=True,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        principal=actor,
        action="sensing.rules.publish",
        target_type="rule_set",
        target_id=str(version),
        detail={
            "version": version,
            "previous": previous,
            "sha256": row.sha256,
            "rollback_of": rollback_of,
            "kept": len(change["kept"]),
            **{k: change[k][:MAX_AUDIT_IDS] for k in ("changed", "added", "removed")},
        },
    )
    outbox.emit(
        session,
        type=PUBLISHED,
        source=SOURCE,
        payload={
            "version": version,
            "sha256": row.sha256,
            "author_id": actor.id,
            "rule_count": row.rule_count,
            "rollback_of": rollback_of,
            "kept": len(change["kept"]),
            "changed": change["changed"],
            "added": change["added"],
            "removed": change["removed"],
        },
    )
    event.listen(session, "after_commit", _bump, once=True)
    return row


def rollback(session: Session, *, version: int, actor: Principal, note: str = "") -> RuleSetVersion:
    """Publish an earlier version's text again (the history stays as it was)."""
    old = get_version(session, version=version)
    return publish(
        session,
        yaml_text=old.yaml_text,
        actor=actor,
        note=note or f"rollback to version {version}",
        rollback_of=version,
    )


class RuleWatcher:
    """Reloads rule engines when a new version is published (see the module docstring).

    Independent of any pipeline: a worker calls :meth:`poll` with its engine(s) before each
    batch; :meth:`load` gives the active rules to build a new engine with."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval_s: float = 5.0,
        listen_local: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.interval_s = interval_s
        self.listen_local = listen_local
        self.clock = clock
        self.latest: int | None = None
        self.checks = 0
        self.reloads = 0
        self.last_report: dict[str, Any] | None = None
        self._checked_at: float | None = None
        self._generation = _local_generation
        self._versions: weakref.WeakKeyDictionary[RuleEngine, int] = weakref.WeakKeyDictionary()
        self._current: tuple[int, RuleSet] | None = None
        self._lock = threading.Lock()

    def load(self) -> tuple[int, RuleSet]:
        """The active version and its rules (for building an engine; see :meth:`mark`)."""
        with self.sessions() as session:
            return active(session)

    def mark(self, engine: RuleEngine, version: int) -> None:
        """Record that ``engine`` runs ``version`` already."""
        with self._lock:
            self._versions[engine] = version

    def version_of(self, engine: RuleEngine) -> int | None:
        return self._versions.get(engine)

    def _latest(self) -> int | None:
        now = self.clock()
        woken = self.listen_local and self._generation != _local_generation
        due = self._checked_at is None or now - self._checked_at >= self.interval_s
        if woken or due:
            self._generation = _local_generation
            self._checked_at = now
            try:
                with self.sessions() as session:
                    self.latest = latest_version(session)
                self.checks += 1
            except Exception:  # the database is away: keep running the rules we have
                log.warning("rule watcher: cannot read the active version", exc_info=True)
        return self.latest

    def poll(self, engine: RuleEngine) -> dict[str, Any] | None:
        """Reload ``engine`` if the active version differs from the one it runs; returns the
        reload report (version, previous, kept/changed/added/removed) or ``None``."""
        with self._lock:
            latest = self._latest()
            current = self._versions.get(engine)
            if latest is None or current == latest:
                return None
            try:
                version, ruleset = self.load()
                report: dict[str, Any] = engine.reload(ruleset)
            except Exception:  # a bad stored row must not stop the pipeline
                log.exception("rule watcher: reload to version %s failed", latest)
                return None
            self._versions[engine] = version
            self.reloads += 1
            report = {"version": version, "previous": current, **report}
            self.last_report = report
        log.info(
            "rules reloaded to version %s (from %s): kept %d, changed %s, added %s, removed %s",
            version,
            current,
            len(report["kept"]),
            report["changed"],
            report["added"],
            report["removed"],
        )
        return report

    def current(self) -> RuleSet:
        """The active rules as one object that changes only when a new version is active:
        a ``ruleset_provider`` for workers that reload when it returns a new object (the
        NATS worker's partitions)."""
        with self._lock:
            latest = self._latest()
            cached = self._current
            if cached is not None and (latest is None or cached[0] == latest):
                return cached[1]
            try:
                version, ruleset = self.load()
            except Exception:  # keep the rules we have while the database is away
                if cached is None:
                    raise
                log.warning("rule watcher: cannot load version %s", latest, exc_info=True)
                return cached[1]
            self._current = (version, ruleset)
            return ruleset
