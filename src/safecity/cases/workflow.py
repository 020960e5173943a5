"""The case state machine and the permissions of the cases domain.

::

    received ──register──▶ registered ──investigate──▶ investigating ──solve──▶ solved
        └──not_register(reason)──▶ not_registered        │ ──suspend(reason)──▶ suspended
                                                          └──close(reason)──▶ closed
    suspended ──resume──▶ investigating

Stage changes are public (the portal shows stage and date, never the internal note);
solving, suspending and closing need a supervisor (``cases:approve``).
"""

from __future__ import annotations

from safecity.cases.models import Case
from safecity.platform.db import utcnow
from safecity.platform.workflow import (
    StateMachine,
    Transition,
    TransitionContext,
    register_machine,
)
from safecity.security import rbac

READ = "cases:read"
WRITE = "cases:write"
APPROVE = "cases:approve"

rbac.grant("officer", READ, WRITE)
rbac.grant("supervisor", READ, WRITE, APPROVE)
rbac.grant("admin", READ, WRITE, APPROVE)
rbac.grant("analyst", READ)

STATES: tuple[str, ...] = (
    "received",
    "registered",
    "not_registered",
    "investigating",
    "solved",
    "suspended",
    "closed",
)
OPEN_STATES: tuple[str, ...] = ("received", "registered", "investigating", "suspended")
SUPERVISED: tuple[str, ...] = ("solve", "suspend", "close")
"""Transitions an officer requests and a supervisor approves or sends back with a comment
(:mod:`safecity.cases.approvals`); a supervisor may still apply them directly."""


def _touch(case: Case, ctx: TransitionContext) -> None:
    case.updated_at = utcnow()


def _not_registered(case: Case, ctx: TransitionContext) -> None:
    _touch(case, ctx)
    case.not_registered_reason = str(ctx.fields.get("reason") or "")


CASE = register_machine(
    StateMachine(
        record_type="case",
        states=STATES,
        initial="received",
        event_source="cases",
        transitions=(
            Transition(
                "register",
                source=("received",),
                target="registered",
                permission=WRITE,
                effect=_touch,
                public=True,
                description="The case is registered; the victim receives number and code.",
            ),
            Transition(
                "register_on_review",
                source=("not_registered",),
                target="registered",
                permission=WRITE,
                effect=_touch,
                public=True,
                description="A review application overturned the decision not to register.",
            ),
            Transition(
                "not_register",
                source=("received",),
                target="not_registered",
                permission=WRITE,
                requires=("reason",),
                effect=_not_registered,
                public=True,
                description="Not registered as a case; the reason is required.",
            ),
            Transition(
                "investigate",
                source=("registered",),
                target="investigating",
                permission=WRITE,
                effect=_touch,
                public=True,
                description="Investigation starts.",
            ),
            Transition(
                "solve",
                source=("investigating",),
                target="solved",
                permission=APPROVE,
                effect=_touch,
                public=True,
                description="Solved (supervisor).",
            ),
            Transition(
                "suspend",
                source=("investigating",),
                target="suspended",
                permission=APPROVE,
                requires=("reason",),
                effect=_touch,
                public=True,
                description="Suspended for lack of leads (supervisor); reason required.",
            ),
            Transition(
                "resume",
                source=("suspended",),
                target="investigating",
                permission=WRITE,
                effect=_touch,
                public=True,
                description="New leads: investigation resumes.",
            ),
            Transition(
                "close",
                source=("registered", "investigating", "suspended"),
                target="closed",
                permission=APPROVE,
                requires=("reason",),
                effect=_touch,
                public=True,
                description="Closed (supervisor); reason required.",
            ),
        ),
    )
)
