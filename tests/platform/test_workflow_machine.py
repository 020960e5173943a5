"""The state machine without a shared database: declaration checks, exports, and
Hypothesis property/stateful tests on an in-memory SQLite session.

Properties: a random sequence of transitions never reaches a state outside the declared
graph's reachable set; an illegal transition raises and changes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import safecity.models  # noqa: F401  (registers every table)
from safecity.platform import workflow
from safecity.platform.db import Base, make_engine, make_session_factory
from safecity.platform.errors import (
    IllegalTransition,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SafeCityError,
)
from safecity.platform.outbox import OutboxEvent
from safecity.platform.timeline import TimelineEntry
from safecity.platform.workflow import StateMachine, Transition
from safecity.security import audit
from safecity.security.rbac import Principal
from tests.platform.test_workflow_support import TICKET, SupportBase, Ticket, principal


@pytest.fixture(scope="module")
def memory_sessions() -> Iterator[sessionmaker[Session]]:
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    SupportBase.metadata.create_all(engine)
    yield make_session_factory(engine)
    engine.dispose()


def bfs(machine: StateMachine) -> set[str]:
    """Reachable states, computed independently of the code under test."""
    seen, queue = {machine.initial}, deque([machine.initial])
    while queue:
        here = queue.popleft()
        for t in machine.transitions:
            if here in t.source and t.target not in seen:
                seen.add(t.target)
                queue.append(t.target)
    return seen


# -- random machines, random walks --------------------------------------------------------


@st.composite
def random_machines(draw: st.DrawFn) -> StateMachine:
    states = [f"s{i}" for i in range(draw(st.integers(2, 6)))]
    transitions = []
    for i in range(draw(st.integers(0, 8))):
        source = draw(st.lists(st.sampled_from(states), min_size=1, max_size=3, unique=True))
        target = draw(st.sampled_from(states))
        transitions.append(
            Transition(f"t{i}", source=tuple(source), target=target, permission="events:read")
        )
    return StateMachine(
        record_type="random", states=tuple(states), initial="s0", transitions=tuple(transitions)
    )


ADMIN = principal("admin", "city", None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(machine=random_machines(), steps=st.lists(st.integers(0, 100), max_size=25))
def test_random_walks_stay_in_the_reachable_graph(
    memory_sessions: sessionmaker[Session], machine: StateMachine, steps: list[int]
) -> None:
    reachable = bfs(machine)
    assert machine.reachable_states() == reachable
    record = SimpleNamespace(id="r1", org_id="org_a", state=machine.initial)
    with memory_sessions() as session:
        for step in steps:
            if not machine.transitions:
                break
            t = machine.transitions[step % len(machine.transitions)]
            before = record.state
            pending = len(session.new)
            audits = len(audit.pending_records(session))
            if before in t.source:
                result = workflow.apply(
                    session, machine=machine, record=record, transition=t.name, principal=ADMIN
                )
                assert record.state == t.target == result.to_state
                assert len(session.new) == pending + 2  # timeline, outbox
                assert len(audit.pending_records(session)) == audits + 1
            else:
                with pytest.raises(IllegalTransition):
                    workflow.apply(
                        session, machine=machine, record=record, transition=t.name, principal=ADMIN
                    )
                assert record.state == before
                assert len(session.new) == pending
                assert len(audit.pending_records(session)) == audits
            assert record.state in reachable
        session.rollback()


# -- a stateful test of the ticket machine with every kind of refusal ----------------------

PEOPLE: dict[str, Principal] = {
    "officer_a": principal("officer", "org_a", frozenset({"org_a"})),
    "supervisor_a": principal("supervisor", "org_a", frozenset({"org_a"})),
    "supervisor_b": principal("supervisor", "org_b", frozenset({"org_b"})),
    "admin": ADMIN,
    "auditor": principal("auditor", "city", None),
}
NAMES = [t.name for t in TICKET.transitions] + ["bogus"]


def expected_error(
    name: str, who: Principal, state: str, on_hold: bool, reason: str | None
) -> type[SafeCityError] | None:
    """The documented order of checks, restated independently."""
    if not who.sees_org("org_a"):
        return NotFound
    t = next((x for x in TICKET.transitions if x.name == name), None)
    if t is None:
        return InvalidInput
    if not who.can(t.permission):
        return PermissionDenied
    if state not in t.source:
        return IllegalTransition
    if "reason" in t.requires and not (reason and reason.strip()):
        return InvalidInput
    if t.guard is not None and on_hold:
        return IllegalTransition
    return None


class TicketWorkflow(RuleBasedStateMachine):
    sessions: ClassVar[sessionmaker[Session]]

    def __init__(self) -> None:
        super().__init__()
        self.session = self.sessions()
        self.ticket = Ticket(org_id="org_a", state="new")
        self.session.add(self.ticket)
        self.session.flush()
        self.expected = "new"
        self.applied = 0

    def counts(self) -> tuple[int, ...]:
        tid = self.ticket.id
        stored = tuple(
            self.session.scalar(select(func.count()).select_from(model).where(where)) or 0
            for model, where in (
                (TimelineEntry, TimelineEntry.record_id == tid),
                (OutboxEvent, OutboxEvent.payload.is_not(None)),
            )
        )
        # Audit records are chained and written at commit; until then they are pending.
        return (*stored, len(audit.pending_records(self.session)))

    @rule(
        name=st.sampled_from(NAMES),
        who=st.sampled_from(sorted(PEOPLE)),
        reason=st.sampled_from([None, "", "  ", "because"]),
    )
    def apply(self, name: str, who: str, reason: str | None) -> None:
        before = self.counts()
        error = expected_error(name, PEOPLE[who], self.expected, self.ticket.on_hold, reason)
        if error is None:
            workflow.apply(
                self.session,
                machine=TICKET,
                record=self.ticket,
                transition=name,
                principal=PEOPLE[who],
                reason=reason,
            )
            self.expected = TICKET.transition(name).target
            self.applied += 1
            assert self.counts() == tuple(n + 1 for n in before)
        else:
            with pytest.raises(SafeCityError) as info:
                workflow.apply(
                    self.session,
                    machine=TICKET,
                    record=self.ticket,
                    transition=name,
                    principal=PEOPLE[who],
                    reason=reason,
                )
            assert type(info.value) is error
            assert not self.session.new
            assert not self.session.dirty
            assert self.counts() == before

    @rule()
    def toggle_hold(self) -> None:
        self.ticket.on_hold = not self.ticket.on_hold
        self.session.flush()

    @invariant()
    def state_is_expected_and_reachable(self) -> None:
        stored = self.session.scalar(select(Ticket.state).where(Ticket.id == self.ticket.id))
        assert self.ticket.state == stored == self.expected
        assert stored in TICKET.reachable_states()
        assert stored != "legacy"

    def teardown(self) -> None:
        self.session.rollback()
        self.session.close()


def test_ticket_workflow_stateful(memory_sessions: sessionmaker[Session]) -> None:
    TicketWorkflow.sessions = memory_sessions
    run_state_machine_as_test(
        TicketWorkflow,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_effects_see_the_fields(memory_sessions: sessionmaker[Session]) -> None:
    seen: dict[str, Any] = {}

    def remember(record: Any, ctx: workflow.TransitionContext) -> None:
        seen.update(ctx.fields, from_state=ctx.from_state)

    machine = StateMachine(
        record_type="thing",
        states=("a", "b"),
        initial="a",
        transitions=(
            Transition(
                "go",
                source=("a",),
                target="b",
                permission="events:read",
                requires=("ticket_no",),
                effect=remember,
            ),
        ),
    )
    record = SimpleNamespace(id="x", org_id=None, state="a")
    with memory_sessions() as session:
        with pytest.raises(InvalidInput, match="ticket_no"):
            workflow.apply(
                session, machine=machine, record=record, transition="go", principal=ADMIN
            )
        workflow.apply(
            session,
            machine=machine,
            record=record,
            transition="go",
            principal=ADMIN,
            fields={"ticket_no": "T-1"},
        )
        session.rollback()
    assert seen == {"ticket_no": "T-1", "from_state": "a"}
    assert record.state == "b"


def test_reachable_and_terminal_states() -> None:
    assert TICKET.reachable_states() == {
        "new",
        "triaged",
        "assigned",
        "resolved",
        "closed",
        "rejected",
    }
    assert TICKET.terminal_states() == {"closed"}


def test_mermaid_and_graph_exports() -> None:
    mermaid = TICKET.to_mermaid()
    assert mermaid.startswith("stateDiagram-v2\n    [*] --> new\n")
    assert "    new --> rejected : reject\n" in mermaid
    assert "    triaged --> rejected : reject\n" in mermaid
    assert "    closed --> [*]\n" in mermaid
    graph = TICKET.as_graph()
    reject = next(t for t in graph["transitions"] if t["name"] == "reject")
    assert reject == {
        "name": "reject",
        "from": ["new", "triaged"],
        "to": "rejected",
        "permission": "workflow:approve",
        "requires": ["reason"],
        "guarded": False,
        "public": False,
        "description": "",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": "nope"}, "initial state"),
        ({"states": ("a", "a")}, "duplicate states"),
        ({"states": ("Bad State",), "initial": "Bad State"}, "lower_snake_case"),
        (
            {"transitions": (Transition("go", source=("a",), target="zz", permission="x:y"),)},
            "undeclared state 'zz'",
        ),
        (
            {"transitions": (Transition("go", source=("a",), target="b", permission="nocolon"),)},
            "area:action",
        ),
        (
            {
                "transitions": (
                    Transition("go", source=("a",), target="b", permission="x:y"),
                    Transition("go", source=("b",), target="a", permission="x:y"),
                )
            },
            "duplicate transition",
        ),
        (
            {"transitions": (Transition("go", source=(), target="b", permission="x:y"),)},
            "no source",
        ),
    ],
)
def test_bad_machines_are_rejected_when_declared(kwargs: dict[str, object], message: str) -> None:
    spec: dict[str, object] = {
        "record_type": "thing",
        "states": ("a", "b"),
        "initial": "a",
        "transitions": (),
    }
    spec.update(kwargs)
    with pytest.raises(ValueError, match=message):
        StateMachine(**spec)  # type: ignore[arg-type]


def test_machine_registry() -> None:
    machine = workflow.register_machine(TICKET)
    assert workflow.get_machine("wf_ticket") is machine
    assert TICKET in workflow.machines()
    clash = StateMachine(record_type="wf_ticket", states=("a",), initial="a", transitions=())
    with pytest.raises(ValueError, match="different state machine"):
        workflow.register_machine(clash)
    with pytest.raises(InvalidInput):
        workflow.get_machine("no_such_type")
