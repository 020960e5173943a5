"""The alert's state machine and the permissions of the alerts domain.

::

    new ──acknowledge──▶ acknowledged ──on_scene──▶ on_scene ──resolve(notes)──▶ resolved
     │  ╲                    │                         │
     │   escalate (SLA job)  └──────resolve(notes)─────┼──────────────────────▶ resolved
     ▼                                                  │
    escalated ──acknowledge / on_scene──▶ …             │
    any open state ──false_alarm(notes)──▶ false_alarm ◀┘

``resolved`` and ``false_alarm`` are terminal: the alert stops collecting repeats of its
dedup key (the next signal opens a new alert).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from safecity.alerts.models import OPEN_SLOT, Alert
from safecity.orgs import service as orgs
from safecity.platform.db import utcnow
from safecity.platform.workflow import (
    StateMachine,
    Transition,
    TransitionContext,
    register_machine,
)
from safecity.security import rbac

READ = "alerts:read"
ACT = "alerts:act"
ESCALATE = "alerts:escalate"

rbac.grant("officer", READ, ACT)
rbac.grant("supervisor", READ, ACT, ESCALATE)
rbac.grant("admin", READ, ACT, ESCALATE)
rbac.grant("analyst", READ)

OPEN_STATES: tuple[str, ...] = ("new", "escalated", "acknowledged", "on_scene")
TERMINAL_STATES: tuple[str, ...] = ("resolved", "false_alarm")
UNACKNOWLEDGED: tuple[str, ...] = ("new",)


def _touch(alert: Alert, ctx: TransitionContext) -> None:
    alert.updated_at = utcnow()


def _acknowledged(alert: Alert, ctx: TransitionContext) -> None:
    _touch(alert, ctx)
    alert.acknowledged_at = alert.updated_at


def _on_scene(alert: Alert, ctx: TransitionContext) -> None:
    _touch(alert, ctx)
    alert.on_scene_at = alert.updated_at
    if alert.acknowledged_at is None:
        alert.acknowledged_at = alert.updated_at


def _closed(alert: Alert, ctx: TransitionContext) -> None:
    _touch(alert, ctx)
    alert.closed_at = alert.updated_at
    if alert.dedup_slot == OPEN_SLOT:
        alert.dedup_slot = alert.id  # repeats now open a new alert


def district_of(session: Session, org_id: str) -> str:
    """The nearest district above (or at) ``org_id``; the org itself when there is none."""
    chain = orgs.ancestors(session=session, org_id=org_id)
    for org in reversed(chain):
        if org.kind == "district":
            return org.id
    return org_id


def _escalated(alert: Alert, ctx: TransitionContext) -> None:
    _touch(alert, ctx)
    alert.escalated = True
    alert.escalated_at = alert.updated_at
    alert.escalated_to_org_id = district_of(ctx.session, alert.org_id)


ALERT = register_machine(
    StateMachine(
        record_type="alert",
        states=("new", "escalated", "acknowledged", "on_scene", "resolved", "false_alarm"),
        initial="new",
        event_source="alerts",
        transitions=(
            Transition(
                "acknowledge",
                source=("new", "escalated"),
                target="acknowledged",
                permission=ACT,
                effect=_acknowledged,
                description="An officer of the station takes the alert.",
            ),
            Transition(
                "on_scene",
                source=("new", "escalated", "acknowledged"),
                target="on_scene",
                permission=ACT,
                effect=_on_scene,
                description="An officer arrived at the place.",
            ),
            Transition(
                "resolve",
                source=("acknowledged", "on_scene"),
                target="resolved",
                permission=ACT,
                requires=("notes",),
                effect=_closed,
                description="Dealt with; the notes say how.",
            ),
            Transition(
                "false_alarm",
                source=OPEN_STATES,
                target="false_alarm",
                permission=ACT,
                requires=("notes",),
                effect=_closed,
                description="Nothing to do (sensor fault, legitimate activity); notes say why.",
            ),
            Transition(
                "escalate",
                source=UNACKNOWLEDGED,
                target="escalated",
                permission=ESCALATE,
                effect=_escalated,
                description="Not acknowledged within its SLA: the district supervisor takes over.",
            ),
        ),
    )
)
