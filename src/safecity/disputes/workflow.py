"""The dispute's mediation state machine and the permissions of the disputes domain.

::

    reported ──mediate──▶ mediating ──agree(notes)──▶ agreement_reached
        │                    │ ──refer(notes)──▶ referred (court, a department)
        │                    │ ──close_unresolved(notes)──▶ closed_unresolved
        └──refer / close_unresolved (notes)──┘
    agreement_reached / referred / closed_unresolved ──reopen(notes)──▶ mediating
"""

from __future__ import annotations

from safecity.disputes.models import Dispute
from safecity.platform.db import utcnow
from safecity.platform.workflow import (
    StateMachine,
    Transition,
    TransitionContext,
    register_machine,
)
from safecity.security import rbac

READ = "disputes:read"
WRITE = "disputes:write"

rbac.grant("officer", READ, WRITE)
rbac.grant("supervisor", READ, WRITE)
rbac.grant("admin", READ, WRITE)
rbac.grant("analyst", READ)

OPEN_STATES: tuple[str, ...] = ("reported", "mediating")
CLOSED_STATES: tuple[str, ...] = ("agreement_reached", "referred", "closed_unresolved")
STATES: tuple[str, ...] = (*OPEN_STATES, *CLOSED_STATES)


def _touch(dispute: Dispute, ctx: TransitionContext) -> None:
    dispute.updated_at = utcnow()


def _closed(dispute: Dispute, ctx: TransitionContext) -> None:
    _touch(dispute, ctx)
    dispute.resolved_at = dispute.updated_at
    dispute.next_follow_up_at = None  # nothing to follow up any more


def _reopened(dispute: Dispute, ctx: TransitionContext) -> None:
    _touch(dispute, ctx)
    dispute.resolved_at = None


DISPUTE = register_machine(
    StateMachine(
        record_type="dispute",
        states=STATES,
        initial="reported",
        event_source="disputes",
        transitions=(
            Transition(
                "mediate",
                source=("reported",),
                target="mediating",
                permission=WRITE,
                effect=_touch,
                description="The station starts mediating between the parties.",
            ),
            Transition(
                "agree",
                source=OPEN_STATES,
                target="agreement_reached",
                permission=WRITE,
                requires=("notes",),
                effect=_closed,
                description="The parties reached an agreement; the notes record it.",
            ),
            Transition(
                "refer",
                source=OPEN_STATES,
                target="referred",
                permission=WRITE,
                requires=("notes",),
                effect=_closed,
                description="Referred to a court or a department; the notes say where.",
            ),
            Transition(
                "close_unresolved",
                source=OPEN_STATES,
                target="closed_unresolved",
                permission=WRITE,
                requires=("notes",),
                effect=_closed,
                description="Closed without agreement; the notes say why.",
            ),
            Transition(
                "reopen",
                source=CLOSED_STATES,
                target="mediating",
                permission=WRITE,
                requires=("notes",),
                effect=_reopened,
                description="The dispute flared up again.",
            ),
        ),
    )
)
