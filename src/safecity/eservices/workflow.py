"""The e-service application's state machine and the permissions of the e-services domain.

::

    draft ──submit──▶ submitted ──accept──▶ accepted ──review──▶ review
    accepted / review ──request_supplement(reason)──▶ supplement_requested   (clock paused)
    supplement_requested ──supplement──▶ review                              (clock resumes)
    accepted / review ──approve──▶ approved ──issue──▶ issued
    submitted / accepted / review / supplement_requested ──reject(reason)──▶ rejected

The applicant acts with ``eservices:apply`` (submit, supplement) on their own applications
only; department staff of the handling org accept, review and ask for supplements
(``eservices:review``) and decide and issue (``eservices:decide``). A single-window parent
is moved by the platform (``audit.SYSTEM``) as its children progress: accepted when every
child is accepted, approved and issued — all results together — when every child is
approved, rejected when one is rejected.
"""

from __future__ import annotations

from safecity.platform.workflow import StateMachine, Transition, register_machine
from safecity.security import rbac

APPLY = "eservices:apply"
READ = "eservices:read"
REVIEW = "eservices:review"
DECIDE = "eservices:decide"
STATS = "eservices:stats"
VIEW = "eservices:view"
"""Open one application: the service lets only its applicant or the handling org in."""

rbac.grant("citizen", APPLY, VIEW)
rbac.grant("department_staff", VIEW, READ, REVIEW, DECIDE, STATS)
rbac.grant("officer", VIEW, READ, REVIEW)
rbac.grant("supervisor", VIEW, READ, REVIEW, DECIDE, STATS)
rbac.grant("analyst", STATS)
rbac.grant("admin", APPLY, VIEW, READ, REVIEW, DECIDE, STATS)

RECORD_TYPE = "eservice_application"
OPEN_STATES: tuple[str, ...] = ("submitted", "accepted", "review", "supplement_requested")
DECIDED_STATES: tuple[str, ...] = ("approved", "rejected")
FINAL_STATES: tuple[str, ...] = ("rejected", "issued")
STATES: tuple[str, ...] = ("draft", *OPEN_STATES, "approved", "rejected", "issued")
IN_HAND: tuple[str, ...] = ("accepted", "review")

APPLICATION = register_machine(
    StateMachine(
        record_type=RECORD_TYPE,
        states=STATES,
        initial="draft",
        event_source="eservices",
        transitions=(
            Transition(
                "submit",
                source=("draft",),
                target="submitted",
                permission=APPLY,
                public=True,
                description="The applicant submitted a complete application.",
            ),
            Transition(
                "accept",
                source=("submitted",),
                target="accepted",
                permission=REVIEW,
                public=True,
                description="The department accepted the application (受理).",
            ),
            Transition(
                "review",
                source=("accepted",),
                target="review",
                permission=REVIEW,
                public=True,
                description="A case worker started the review (审查).",
            ),
            Transition(
                "request_supplement",
                source=IN_HAND,
                target="supplement_requested",
                permission=REVIEW,
                requires=("reason",),
                public=True,
                description="The applicant is told, once and in full, what to supplement; "
                "the working-day clock stops.",
            ),
            Transition(
                "supplement",
                source=("supplement_requested",),
                target="review",
                permission=APPLY,
                public=True,
                description="The applicant supplemented the materials; the clock runs again.",
            ),
            Transition(
                "approve",
                source=IN_HAND,
                target="approved",
                permission=DECIDE,
                public=True,
                description="Decided: approved (准予).",
            ),
            Transition(
                "reject",
                source=OPEN_STATES,
                target="rejected",
                permission=DECIDE,
                requires=("reason",),
                public=True,
                description="Decided: rejected (不予), with the reason.",
            ),
            Transition(
                "issue",
                source=("approved",),
                target="issued",
                permission=DECIDE,
                public=True,
                description="The e-certificate was issued.",
            ),
        ),
    )
)

#: Actions the applicant takes (the others are staff actions).
APPLICANT_ACTIONS: frozenset[str] = frozenset({"submit", "supplement"})
