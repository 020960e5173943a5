"""Declarative state machines: one per record type, applied the same way everywhere.

A domain declares its machine once::

    CASE = StateMachine(
        record_type="case",
        states=("open", "assigned", "closed"),
        initial="open",
        transitions=(
            Transition("assign", source=("open",), target="assigned", permission="cases:assign"),
            Transition("close", source=("open", "assigned"), target="closed",
                       permission="cases:close", requires=("reason",)),
        ),
    )

and changes a record's state only through :func:`apply`, which, in the caller's
transaction and in this order:

1. hides records outside the principal's org scope (404, :func:`rbac.ensure_in_scope`);
2. rejects an unknown transition name (422) and a principal lacking the transition's
   permission (403);
3. rejects a transition not allowed from the current state (409 :class:`IllegalTransition`);
4. rejects missing required fields, e.g. a reason (422), and a failing guard (409);
5. changes the state with a compare-and-set ``UPDATE`` (a concurrent change → 409),
   runs the transition's effect, and writes an audit record, a timeline entry and an
   outbox event.

Nothing is written unless every check passed. The record is any object with ``id``,
``org_id`` and ``state`` attributes (names configurable), normally a mapped SQLAlchemy row.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from safecity.platform import outbox, timeline
from safecity.platform.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied
from safecity.platform.events import Envelope, register_event_type
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
PERMISSION_RE = re.compile(r"^[a-z][a-z0-9_.-]*:[a-z][a-z0-9_.-]*$")

TRANSITIONED = "platform.workflow.transitioned"
TRANSITION_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["record_type", "record_id", "transition", "from_state", "to_state", "actor_id"],
    "properties": {
        "record_type": {"type": "string", "minLength": 1},
        "record_id": {"type": "string", "minLength": 1},
        "transition": {"type": "string", "minLength": 1},
        "from_state": {"type": "string", "minLength": 1},
        "to_state": {"type": "string", "minLength": 1},
        "actor_id": {"type": "string"},
        "timeline_entry_id": {"type": "string"},
    },
}
register_event_type(
    TRANSITIONED,
    TRANSITION_EVENT_SCHEMA,
    description="A record changed state through its workflow (ids and states only).",
)

Guard = Callable[[Any, Principal], str | None]
"""``guard(record, principal)`` returns ``None`` to allow, or why the transition is refused."""

Effect = Callable[[Any, "TransitionContext"], None]
"""``effect(record, ctx)`` runs after the state changed, e.g. to stamp ``closed_at``."""


@dataclass(frozen=True)
class Transition:
    """One named transition: from any of ``source`` to ``target``, needing ``permission``."""

    name: str
    source: tuple[str, ...]
    target: str
    permission: str
    requires: tuple[str, ...] = ()
    guard: Guard | None = None
    effect: Effect | None = None
    public: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        # Accept any iterable of states; store a tuple so the transition stays hashable.
        object.__setattr__(self, "source", tuple(self.source))
        object.__setattr__(self, "requires", tuple(self.requires))


@dataclass(frozen=True)
class TransitionContext:
    """What an effect sees: who, which transition, and the fields given to :func:`apply`."""

    session: Session
    principal: Principal
    transition: Transition
    from_state: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class StateMachine:
    """The states and transitions of one record type (validated when declared)."""

    record_type: str
    states: tuple[str, ...]
    initial: str
    transitions: tuple[Transition, ...]
    state_attr: str = "state"
    org_attr: str = "org_id"
    id_attr: str = "id"
    event_type: str = TRANSITIONED
    event_source: str = ""
    _by_name: dict[str, Transition] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "transitions", tuple(self.transitions))
        problems = list(self._problems())
        if problems:
            raise ValueError(f"state machine {self.record_type!r}: " + "; ".join(problems))
        object.__setattr__(self, "_by_name", {t.name: t for t in self.transitions})

    def _problems(self) -> Iterable[str]:
        if not self.record_type:
            yield "record_type is empty"
        if not self.states:
            yield "no states"
        if len(set(self.states)) != len(self.states):
            yield "duplicate states"
        for state in self.states:
            if not NAME_RE.match(state):
                yield f"state {state!r} is not a lower_snake_case name"
        if self.initial not in self.states:
            yield f"initial state {self.initial!r} is not a declared state"
        names = [t.name for t in self.transitions]
        if len(set(names)) != len(names):
            yield "duplicate transition names"
        for t in self.transitions:
            if not NAME_RE.match(t.name):
                yield f"transition {t.name!r} is not a lower_snake_case name"
            if not t.source:
                yield f"transition {t.name!r} has no source state"
            for state in (*t.source, t.target):
                if state not in self.states:
                    yield f"transition {t.name!r} uses undeclared state {state!r}"
            if not PERMISSION_RE.match(t.permission):
                yield f"transition {t.name!r} permission {t.permission!r} is not 'area:action'"

    def transition(self, name: str) -> Transition:
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidInput(
                f"{self.record_type} has no transition {name!r}",
                allowed=sorted(self._by_name),
            ) from None

    def transitions_from(self, state: str) -> list[Transition]:
        return [t for t in self.transitions if state in t.source]

    def reachable_states(self) -> frozenset[str]:
        """States reachable from the initial state along declared transitions."""
        seen = {self.initial}
        queue = deque([self.initial])
        while queue:
            for t in self.transitions_from(queue.popleft()):
                if t.target not in seen:
                    seen.add(t.target)
                    queue.append(t.target)
        return frozenset(seen)

    def terminal_states(self) -> frozenset[str]:
        """States with no way out."""
        return frozenset(s for s in self.states if not self.transitions_from(s))

    def as_graph(self) -> dict[str, Any]:
        """A JSON-ready description (for UIs, docs and the API)."""
        return {
            "record_type": self.record_type,
            "initial": self.initial,
            "states": list(self.states),
            "terminal": sorted(self.terminal_states()),
            "transitions": [
                {
                    "name": t.name,
                    "from": list(t.source),
                    "to": t.target,
                    "permission": t.permission,
                    "requires": list(t.requires),
                    "guarded": t.guard is not None,
                    "public": t.public,
                    "description": t.description,
                }
                for t in self.transitions
            ],
        }

    def to_mermaid(self) -> str:
        """A Mermaid ``stateDiagram-v2`` of the machine (names are safe identifiers)."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        for t in self.transitions:
            for source in t.source:
                lines.append(f"    {source} --> {t.target} : {t.name}")
        for state in sorted(self.terminal_states()):
            lines.append(f"    {state} --> [*]")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TransitionResult:
    record: Any
    transition: Transition
    from_state: str
    to_state: str
    timeline_entry: timeline.TimelineEntry
    audit_entry: audit.AuditEntry
    event: Envelope


_MACHINES: dict[str, StateMachine] = {}


def register_machine(machine: StateMachine) -> StateMachine:
    """Make ``machine`` discoverable by record type (idempotent for the same machine)."""
    existing = _MACHINES.get(machine.record_type)
    if existing is not None and existing is not machine and existing != machine:
        raise ValueError(f"a different state machine is registered for {machine.record_type!r}")
    _MACHINES[machine.record_type] = machine
    return machine


def get_machine(record_type: str) -> StateMachine:
    try:
        return _MACHINES[record_type]
    except KeyError:
        raise InvalidInput(f"no state machine for record type {record_type!r}") from None


def machines() -> list[StateMachine]:
    return sorted(_MACHINES.values(), key=lambda m: m.record_type)


def current_state(machine: StateMachine, record: Any) -> str:
    return str(getattr(record, machine.state_attr))


def _record_id(machine: StateMachine, record: Any) -> str:
    return str(getattr(record, machine.id_attr))


def _record_org(machine: StateMachine, record: Any) -> str | None:
    org = getattr(record, machine.org_attr, None)
    return None if org is None else str(org)


def _missing_fields(transition: Transition, fields: Mapping[str, Any]) -> list[str]:
    missing = []
    for name in transition.requires:
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            missing.append(name)
    return missing


def available_transitions(
    *, machine: StateMachine, record: Any, principal: Principal
) -> list[Transition]:
    """Transitions ``principal`` may apply to ``record`` now (required fields aside)."""
    if not principal.sees_org(_record_org(machine, record)):
        return []
    state = current_state(machine, record)
    return [
        t
        for t in machine.transitions_from(state)
        if principal.can(t.permission) and (t.guard is None or t.guard(record, principal) is None)
    ]


def start(
    session: Session,
    *,
    machine: StateMachine,
    record: Any,
    principal: Principal,
    note: str | None = None,
    public: bool = False,
) -> timeline.TimelineEntry:
    """Put a new record in the initial state and open its timeline with a "created" entry.

    A mapped record without an id yet is added to the session and flushed. The domain's
    create function audits the creation and emits its own event.
    """
    state = getattr(record, machine.state_attr, None)
    if state is None:
        setattr(record, machine.state_attr, machine.initial)
    elif state != machine.initial:
        raise IllegalTransition(f"a new {machine.record_type} starts in {machine.initial!r}")
    if getattr(record, machine.id_attr, None) is None and sa_inspect(record, raiseerr=False):
        session.add(record)
        session.flush()  # assigns the id the timeline entry refers to
    return timeline.add(
        session,
        record_type=machine.record_type,
        record_id=_record_id(machine, record),
        org_id=_record_org(machine, record),
        kind="created",
        actor_id=principal.id,
        to_state=machine.initial,
        note=note,
        public=public,
    )


def _set_state(session: Session, machine: StateMachine, record: Any, old: str, new: str) -> None:
    """Compare-and-set the state column; a concurrent change raises :class:`Conflict`."""
    state = sa_inspect(record, raiseerr=False)
    if state is None or not getattr(state, "persistent", False):
        setattr(record, machine.state_attr, new)
        return
    cls = type(record)
    stmt = (
        update(cls)
        .where(
            getattr(cls, machine.id_attr) == getattr(record, machine.id_attr),
            getattr(cls, machine.state_attr) == old,
        )
        .values({machine.state_attr: new})
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], session.execute(stmt))
    if result.rowcount != 1:
        raise Conflict(
            f"this {machine.record_type} changed while you were working on it; reload it"
        )
    set_committed_value(record, machine.state_attr, new)


def apply(
    session: Session,
    *,
    machine: StateMachine,
    record: Any,
    transition: str,
    principal: Principal,
    reason: str | None = None,
    note: str | None = None,
    fields: Mapping[str, Any] | None = None,
    purpose: str | None = None,
    public: bool | None = None,
) -> TransitionResult:
    """Apply the named transition to ``record`` in ``session``'s transaction.

    ``reason`` and the entries of ``fields`` satisfy the transition's ``requires``; the
    reason (or else ``note``) becomes the timeline note. ``public`` overrides the
    transition's default visibility of the timeline entry.
    """
    rbac.ensure_in_scope(principal, _record_org(machine, record), what=machine.record_type)
    t = machine.transition(transition)
    if not principal.can(t.permission):
        raise PermissionDenied(f"permission {t.permission!r} is required to {t.name}")
    old = current_state(machine, record)
    if old not in t.source:
        raise IllegalTransition(
            f"cannot {t.name} a {machine.record_type} that is {old!r}",
            state=old,
            transition=t.name,
            allowed=[x.name for x in machine.transitions_from(old)],
        )
    values: dict[str, Any] = dict(fields or {})
    if reason is not None:
        values["reason"] = reason
    missing = _missing_fields(t, values)
    if missing:
        raise InvalidInput(f"{t.name} requires {', '.join(missing)}", missing=missing)
    if t.guard is not None:
        refusal = t.guard(record, principal)
        if refusal is not None:
            raise IllegalTransition(refusal, state=old, transition=t.name)

    _set_state(session, machine, record, old, t.target)
    if t.effect is not None:
        t.effect(
            record,
            TransitionContext(
                session=session, principal=principal, transition=t, from_state=old, fields=values
            ),
        )
    record_id = _record_id(machine, record)
    org_id = _record_org(machine, record)
    text = reason if reason is not None else note
    entry = timeline.add(
        session,
        record_type=machine.record_type,
        record_id=record_id,
        org_id=org_id,
        kind="transition",
        actor_id=principal.id,
        from_state=old,
        to_state=t.target,
        note=text,
        public=t.public if public is None else public,
    )
    audit_entry = audit.record(
        session,
        principal=principal,
        action=f"{machine.record_type}.{t.name}",
        target_type=machine.record_type,
        target_id=record_id,
        purpose=purpose,
        detail={"transition": t.name, "from": old, "to": t.target, "timeline": entry.id},
    )
    event = outbox.emit(
        session,
        type=machine.event_type,
        source=machine.event_source or machine.record_type,
        org_id=org_id,
        payload={
            "record_type": machine.record_type,
            "record_id": record_id,
            "transition": t.name,
            "from_state": old,
            "to_state": t.target,
            "actor_id": principal.id,
            "timeline_entry_id": entry.id,
        },
    )
    return TransitionResult(
        record=record,
        transition=t,
        from_state=old,
        to_state=t.target,
        timeline_entry=entry,
        audit_entry=audit_entry,
        event=event,
    )
