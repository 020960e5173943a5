"""A small record type and state machine shared by the workflow tests (no tests here).

The test table lives in its own metadata, never in ``Base.metadata`` (which must match
the migrations).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Engine, Integer, String, delete
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from safecity.platform.db import new_id
from safecity.platform.workflow import StateMachine, Transition, TransitionContext
from safecity.security.rbac import Principal


class SupportBase(DeclarativeBase):
    pass


class Ticket(SupportBase):
    __tablename__ = "wf_test_tickets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    org_id: Mapped[str | None] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    on_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    resolutions: Mapped[int] = mapped_column(Integer, default=0)


def not_on_hold(record: Any, principal: Principal) -> str | None:
    return "the ticket is on hold" if record.on_hold else None


def count_resolution(record: Any, ctx: TransitionContext) -> None:
    record.resolutions = (record.resolutions or 0) + 1


TICKET = StateMachine(
    record_type="wf_ticket",
    states=("new", "triaged", "assigned", "resolved", "closed", "rejected", "legacy"),
    initial="new",
    transitions=(
        Transition("triage", source=("new",), target="triaged", permission="events:read"),
        Transition(
            "reject",
            source=("new", "triaged"),
            target="rejected",
            permission="workflow:approve",
            requires=("reason",),
        ),
        Transition(
            "assign",
            source=("triaged",),
            target="assigned",
            permission="events:read",
            guard=not_on_hold,
        ),
        Transition(
            "resolve",
            source=("assigned",),
            target="resolved",
            permission="events:read",
            effect=count_resolution,
        ),
        Transition(
            "reopen",
            source=("resolved", "rejected"),
            target="triaged",
            permission="workflow:approve",
            requires=("reason",),
        ),
        Transition(
            "close", source=("resolved",), target="closed", permission="jobs:run", public=True
        ),
        # "legacy" is declared but unreachable from "new": random walks must never get there.
        Transition("migrate", source=("legacy",), target="closed", permission="events:read"),
    ),
)


def reset_table(engine: Engine) -> None:
    SupportBase.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(delete(Ticket))


def principal(
    role: str, org_id: str, visible: frozenset[str] | None, *, pid: str | None = None
) -> Principal:
    return Principal(
        id=pid or f"{role}-{org_id}",
        kind="user",
        username=pid or f"{role}-{org_id}",
        roles=frozenset({role}),
        org_id=org_id,
        visible_org_ids=visible,
    )
