"""The accident case's state machine and the permissions of the accidents domain.

::

    opened ──join──▶ joined ──complete_evidence──▶ evidence_complete ──agree──▶ agreed
    agreed ──notify──▶ notified ──close──▶ closed
    opened / joined / evidence_complete / agreed ──escalate(reason)──▶ escalated
    escalated ──rule(notes)──▶ evidence_complete     (an officer set the shares)
    escalated ──resume(notes)──▶ evidence_complete   (the table's verdict stands)
    escalated ──refer(notes)──▶ closed               (handled by the police, e.g. 122)

The drivers act through their party tokens with ``accidents:party`` (a citizen principal
scoped to the case's org, :func:`safecity.accidents.service.party_principal`); the
platform's own steps (notify, close) run as ``audit.SYSTEM``; officers decide escalated
cases with ``accidents:review``. Review flags on photos (EXIF, duplicates) raise an alert
for an officer but never move the case: flags never block.
"""

from __future__ import annotations

from safecity.accidents.models import AccidentCase
from safecity.platform.db import utcnow
from safecity.platform.workflow import (
    StateMachine,
    Transition,
    TransitionContext,
    register_machine,
)
from safecity.security import rbac

READ = "accidents:read"
REVIEW = "accidents:review"
PARTY = "accidents:party"

rbac.grant("officer", READ, REVIEW)
rbac.grant("supervisor", READ, REVIEW)
rbac.grant("admin", READ, REVIEW, PARTY)
rbac.grant("analyst", READ)
rbac.grant("citizen", PARTY)

OPEN_STATES: tuple[str, ...] = ("opened", "joined", "evidence_complete", "agreed")
STATES: tuple[str, ...] = (*OPEN_STATES, "notified", "closed", "escalated")


def _touch(case: AccidentCase, ctx: TransitionContext) -> None:
    case.updated_at = utcnow()


def _has_verdict(case: AccidentCase, principal: rbac.Principal) -> str | None:
    liability = case.liability or {}
    return None if liability.get("share_a") is not None else "there is no verdict to resume"


def _closed(case: AccidentCase, ctx: TransitionContext) -> None:
    _touch(case, ctx)
    case.closed_at = case.updated_at


ACCIDENT = register_machine(
    StateMachine(
        record_type="accident",
        states=STATES,
        initial="opened",
        event_source="accidents",
        transitions=(
            Transition(
                "join",
                source=("opened",),
                target="joined",
                permission=PARTY,
                effect=_touch,
                description="Driver B joined with the join code.",
            ),
            Transition(
                "complete_evidence",
                source=("joined",),
                target="evidence_complete",
                permission=PARTY,
                effect=_touch,
                description="Photos, data and both accounts are in; the table decided.",
            ),
            Transition(
                "agree",
                source=("evidence_complete",),
                target="agreed",
                permission=PARTY,
                effect=_touch,
                description="Both drivers signed the sealed summary.",
            ),
            Transition(
                "notify",
                source=("agreed",),
                target="notified",
                permission=PARTY,
                effect=_touch,
                description="Every party's insurer acknowledged the notice of loss.",
            ),
            Transition(
                "close",
                source=("notified",),
                target="closed",
                permission=PARTY,
                effect=_closed,
                description="The insurers reported payment.",
            ),
            Transition(
                "escalate",
                source=OPEN_STATES,
                target="escalated",
                permission=PARTY,
                requires=("reason",),
                effect=_touch,
                description="Not eligible, accounts disagree or no rule fits: an officer decides.",
            ),
            Transition(
                "rule",
                source=("escalated",),
                target="evidence_complete",
                permission=REVIEW,
                requires=("notes",),
                effect=_touch,
                description="An officer set the liability shares; the drivers then sign.",
            ),
            Transition(
                "resume",
                source=("escalated",),
                target="evidence_complete",
                permission=REVIEW,
                requires=("notes",),
                effect=_touch,
                guard=_has_verdict,
                description="An officer reviewed the case; the table's verdict stands.",
            ),
            Transition(
                "refer",
                source=("escalated",),
                target="closed",
                permission=REVIEW,
                requires=("notes",),
                effect=_closed,
                description="Handled by the traffic police outside this flow.",
            ),
        ),
    )
)
