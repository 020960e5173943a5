"""The work order's state machine and the permissions of the dispatch domain.

::

    open ──accept──▶ accepted ──start──▶ in_progress ──close(notes)──▶ closed
     │                  │                                   ▲
     │                  └───────────close(notes)────────────┘
     └──reject(notes)──▶ rejected ◀──reject(notes)── accepted

The machine's org is the handling org (``department_id``): only its staff (or a
city-wide role) may act. Readers also see orders in their area (``area_org_id``).
"""

from __future__ import annotations

from safecity.dispatch.models import WorkOrder
from safecity.platform.db import utcnow
from safecity.platform.workflow import (
    StateMachine,
    Transition,
    TransitionContext,
    register_machine,
)
from safecity.security import rbac

READ = "dispatch:read"
WRITE = "dispatch:write"
ROUTE = "dispatch:route"
SUBMIT = "open311:submit"

rbac.grant("department_staff", READ, WRITE)
rbac.grant("officer", READ, WRITE)
rbac.grant("supervisor", READ, WRITE)
rbac.grant("analyst", READ)
rbac.grant("admin", READ, WRITE, ROUTE)
rbac.grant("open311_client", SUBMIT)

OPEN_STATES: tuple[str, ...] = ("open", "accepted", "in_progress")
CLOSED_STATES: tuple[str, ...] = ("closed", "rejected")


def _touch(order: WorkOrder, ctx: TransitionContext) -> None:
    order.updated_at = utcnow()


def _closed(order: WorkOrder, ctx: TransitionContext) -> None:
    _touch(order, ctx)
    order.closed_at = order.updated_at


WORK_ORDER = register_machine(
    StateMachine(
        record_type="work_order",
        states=("open", "accepted", "in_progress", "closed", "rejected"),
        initial="open",
        org_attr="department_id",
        event_source="dispatch",
        transitions=(
            Transition(
                "accept",
                source=("open",),
                target="accepted",
                permission=WRITE,
                effect=_touch,
                public=True,
                description="The department takes the order.",
            ),
            Transition(
                "start",
                source=("accepted",),
                target="in_progress",
                permission=WRITE,
                effect=_touch,
                public=True,
                description="Work has started.",
            ),
            Transition(
                "close",
                source=("accepted", "in_progress"),
                target="closed",
                permission=WRITE,
                requires=("notes",),
                effect=_closed,
                description="Done; the notes say what was done.",
            ),
            Transition(
                "reject",
                source=("open", "accepted"),
                target="rejected",
                permission=WRITE,
                requires=("notes",),
                effect=_closed,
                description="Not this department's job or nothing to do; the notes say why.",
            ),
        ),
    )
)
