"""State machines and permissions of the fraud domain.

Indicator (a block-list entry)::

    proposed ──approve──▶ active ──expire──▶ expired
        │                  │ ──remove(notes)──▶ removed      (an appeal upheld, an error)
        └─reject(notes)─▶ rejected       expired / removed ──reinstate(notes)──▶ active

Action (a task the engine asked for)::

    open ──close(outcome)──▶ done        open ──expire──▶ expired (deadline passed)
"""

from __future__ import annotations

from typing import Any

from safecity.platform.db import utcnow
from safecity.platform.workflow import StateMachine, Transition, TransitionContext, register_machine
from safecity.security import rbac

READ = "fraud:read"
REVIEW = "fraud:review"
ACT = "fraud:act"
INGEST = "fraud:ingest"
EXPORT = "fraud:export"

rbac.grant("officer", READ, ACT)
rbac.grant("supervisor", READ, ACT, REVIEW, EXPORT)
rbac.grant("analyst", READ)
rbac.grant("admin", READ, ACT, REVIEW, EXPORT, INGEST)
rbac.grant("device", INGEST)

INDICATOR_STATES = ("proposed", "active", "rejected", "expired", "removed")
ACTION_STATES = ("open", "done", "expired")


def _reviewed(indicator: Any, ctx: TransitionContext) -> None:
    indicator.reviewed_by = ctx.principal.id
    indicator.reviewed_at = indicator.updated_at = utcnow()


def _touch(record: Any, ctx: TransitionContext) -> None:
    record.updated_at = utcnow()


def _closed(action: Any, ctx: TransitionContext) -> None:
    action.outcome = ctx.fields.get("outcome")
    action.outcome_note = str(ctx.fields.get("notes") or "")
    action.closed_at = utcnow()
    action.owner_id = action.owner_id or ctx.principal.id


def _expired(action: Any, ctx: TransitionContext) -> None:
    action.closed_at = utcnow()


INDICATOR = register_machine(
    StateMachine(
        record_type="fraud_indicator",
        states=INDICATOR_STATES,
        initial="proposed",
        event_source="fraud",
        transitions=(
            Transition(
                "approve",
                source=("proposed",),
                target="active",
                permission=REVIEW,
                effect=_reviewed,
                description="A reviewer confirms the entry: it is exported and matched.",
            ),
            Transition(
                "reject",
                source=("proposed",),
                target="rejected",
                permission=REVIEW,
                requires=("notes",),
                effect=_reviewed,
                description="A reviewer turns the proposal down; the notes say why.",
            ),
            Transition(
                "expire",
                source=("active",),
                target="expired",
                permission=REVIEW,
                effect=_touch,
                description="The entry passed its expiry (numbers are reassigned).",
            ),
            Transition(
                "remove",
                source=("active",),
                target="removed",
                permission=REVIEW,
                requires=("notes",),
                effect=_reviewed,
                description="Taken off the list (an appeal upheld, an error).",
            ),
            Transition(
                "reinstate",
                source=("expired", "removed"),
                target="active",
                permission=REVIEW,
                requires=("notes",),
                effect=_reviewed,
                description="Back on the list with fresh evidence.",
            ),
        ),
    )
)

ACTION = register_machine(
    StateMachine(
        record_type="fraud_action",
        states=ACTION_STATES,
        initial="open",
        event_source="fraud",
        transitions=(
            Transition(
                "close",
                source=("open",),
                target="done",
                permission=ACT,
                requires=("outcome",),
                effect=_closed,
                description="Done, with its outcome (the label the models learn from).",
            ),
            Transition(
                "expire",
                source=("open",),
                target="expired",
                permission=ACT,
                effect=_expired,
                description="Its deadline passed with nobody acting on it.",
            ),
        ),
    )
)
