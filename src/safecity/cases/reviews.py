"""Criminal review applications (复议 / 复核) against a decision on a case.

::

    filed ──accept──▶ accepted ──start──▶ reviewing ──uphold──▶ upheld
      └──reject(reason)──▶ not_accepted                  └──overturn──▶ overturned
    upheld | not_accepted ──request_reexam──▶ reexam_filed ──reexam_accept──▶ reexam_accepted
      reexam_filed ──reexam_reject(reason)──▶ reexam_not_accepted
      reexam_accepted ──reexam_uphold──▶ reexam_upheld | ──reexam_overturn──▶ reexam_overturned

复议 (reconsideration) is decided by the legal department of the authority that made the
decision; 复核 (re-examination) by the next level up (上一级公安机关, 程序规定(2020)
第179条). A review's ``org_id`` is who decides its current level: the case's unit while
it is a 复议; ``request_reexam`` moves it to the parent org of the unit that decided the
复议 (a station's district, a district's city; :func:`reexam_org`), so the list, the pages
and the overdue job, which all go by ``org_id``, put the 复核 before the district's
supervisors and the station can no longer act on it. A unit with no parent has no level
above it in this system: asking for 复核 there is refused (409) and nothing changes.

The station still follows the outcome: :func:`case_reviews` lists a case's reviews by the
**case's** scope (stage, deadline and deciding unit; never the grounds or a reason;
``GET /api/cases/{id}/reviews``), so the station that owns the case sees the 复核's status.

The victim files from the portal (number + code) or an officer files on their behalf in the
console. Every stage is on the review's public timeline (the portal shows stage, dates and
deadline: never the grounds or a reason), and every stage change sends the victim one
message (idempotent per stage).

An overturned decision moves the case through the cases service: ``not_registered`` by
the case transition :data:`REOPEN_TRANSITION` (``register_on_review``, when the case machine
declares it), ``suspended`` by ``resume``. A case transition the case machine lacks is
recorded as pending (audit ``cases.review.case_pending``) for the lead to wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.cases import catalogue, notices, portal
from safecity.cases import service as cases
from safecity.cases.models import Case
from safecity.cases.reviews_models import CaseReview
from safecity.cases.workflow import CASE, WRITE
from safecity.eservices.workdays import CHINA_TZ, local_date
from safecity.orgs import service as orgs
from safecity.platform import notify, timeline, workflow
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput, PermissionDenied
from safecity.platform.workflow import StateMachine, Transition, TransitionContext
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

REVIEW = "cases:review"
rbac.grant("supervisor", REVIEW)
rbac.grant("admin", REVIEW)

RECORD = "case_review"
MAX_GROUNDS = 4000
Level = Literal["reconsideration", "reexamination"]


@dataclass(frozen=True)
class Rule:
    """Windows and stage deadlines, in calendar days (Chinese law counts 日 as calendar
    days; the day of the triggering event is not counted: 刑事诉讼法 第105条)."""

    file_days: int
    """Days to file, from the decision (复议) or from the 复议 outcome (复核)."""
    accept_days: int
    """Days to accept or not accept, from filing."""
    decide_days: int
    """Days to decide, from filing."""
    basis: str


# 公安机关办理刑事案件程序规定 (2020) 第179条: 控告人对不予立案决定不服的，可以在收到
# 不予立案通知书后七日以内向作出决定的公安机关申请复议；公安机关应当在收到复议申请后
# 三十日以内作出决定……对复议决定不服的，可以在收到复议决定书后七日以内向上一级公安机关
# 申请复核；上一级公安机关应当在收到复核申请后三十日以内作出决定。
# The 5-day acceptance step is this system's target (公安机关办理刑事复议复核案件程序规定,
# 公安部令第133号, governs acceptance; check its figure before relying on it).
# Closing (撤销案件) and suspension are not listed for victims' 复议 in the 2020 rules: the
# same windows are applied here as local policy so a victim's objection is tracked.
RULES: dict[tuple[str, Level], Rule] = {
    ("not_registered", "reconsideration"): Rule(7, 5, 30, "程序规定(2020)第179条"),
    ("not_registered", "reexamination"): Rule(7, 5, 30, "程序规定(2020)第179条"),
    ("closed", "reconsideration"): Rule(7, 5, 30, "local policy (mirrors 第179条)"),
    ("closed", "reexamination"): Rule(7, 5, 30, "local policy (mirrors 第179条)"),
    ("suspended", "reconsideration"): Rule(7, 5, 30, "local policy (mirrors 第179条)"),
    ("suspended", "reexamination"): Rule(7, 5, 30, "local policy (mirrors 第179条)"),
}
DECISIONS: tuple[str, ...] = ("not_registered", "closed", "suspended")
REOPEN_TRANSITION = "register_on_review"
CASE_ON_OVERTURN: dict[str, str] = {"not_registered": REOPEN_TRANSITION, "suspended": "resume"}

STATES: tuple[str, ...] = (
    "filed",
    "not_accepted",
    "accepted",
    "reviewing",
    "upheld",
    "overturned",
    "reexam_filed",
    "reexam_not_accepted",
    "reexam_accepted",
    "reexam_upheld",
    "reexam_overturned",
)
FINAL: frozenset[str] = frozenset(
    {"overturned", "reexam_not_accepted", "reexam_upheld", "reexam_overturned"}
)
REEXAM_FROM: tuple[str, ...] = ("upheld", "not_accepted")
# Stages whose deadline counts from filing: accept_days or decide_days of the rule.
ACCEPT_STAGES = ("filed", "reexam_filed")
DECIDE_STAGES = ("accepted", "reviewing", "reexam_accepted")

STAGE_ZH: dict[str, str] = {
    "filed": "复议申请已收到",
    "not_accepted": "复议申请不予受理",
    "accepted": "复议申请已受理",
    "reviewing": "复议审查中",
    "upheld": "复议维持原决定",
    "overturned": "复议撤销原决定",
    "reexam_filed": "复核申请已收到",
    "reexam_not_accepted": "复核申请不予受理",
    "reexam_accepted": "复核申请已受理",
    "reexam_upheld": "复核维持原决定",
    "reexam_overturned": "复核撤销原决定",
}


def level_of(state: str) -> Level:
    return "reexamination" if state.startswith("reexam_") else "reconsideration"


def end_of_day(start: datetime, days: int) -> datetime:
    """The end (local midnight, Asia/Shanghai) of the ``days``-th day after ``start``'s
    local date (the start day is not counted)."""
    last: date = local_date(start) + timedelta(days=days + 1)
    return datetime.combine(last, time(0), tzinfo=CHINA_TZ)


def _filed_at(session: Session, review: CaseReview) -> datetime:
    """When the current level was filed (the created entry, or request_reexam)."""
    if level_of(review.state) == "reconsideration":
        return review.created_at
    for e in reversed(timeline.list_for(session, record_type=RECORD, record_id=review.id)):
        if e.to_state == "reexam_filed":
            return e.at
    return review.stage_since  # pragma: no cover


def _set_due(session: Session, review: CaseReview, now: datetime) -> None:
    review.stage_since = now
    review.updated_at = now
    rule = RULES[(review.decision, level_of(review.state))]
    if review.state in ACCEPT_STAGES:
        review.due_at = end_of_day(_filed_at(session, review), rule.accept_days)
    elif review.state in DECIDE_STAGES:
        review.due_at = end_of_day(_filed_at(session, review), rule.decide_days)
    else:
        review.due_at = None


def _effect(review: CaseReview, ctx: TransitionContext) -> None:
    reason = ctx.fields.get("reason")
    if reason:
        review.outcome_reason = str(reason)


def _t(name: str, source: tuple[str, ...], target: str, *, reason: bool = False) -> Transition:
    return Transition(
        name,
        source=source,
        target=target,
        permission=REVIEW,
        requires=("reason",) if reason else (),
        effect=_effect,
        public=True,
    )


MACHINE = workflow.register_machine(
    StateMachine(
        record_type=RECORD,
        states=STATES,
        initial="filed",
        event_source="cases",
        transitions=(
            _t("accept", ("filed",), "accepted"),
            _t("reject", ("filed",), "not_accepted", reason=True),
            _t("start", ("accepted",), "reviewing"),
            _t("uphold", ("reviewing",), "upheld", reason=True),
            _t("overturn", ("reviewing",), "overturned", reason=True),
            Transition(
                "request_reexam",
                source=REEXAM_FROM,
                target="reexam_filed",
                permission=WRITE,
                effect=_effect,
                public=True,
                description="Re-examination by the next level up (filed for the citizen).",
            ),
            _t("reexam_accept", ("reexam_filed",), "reexam_accepted"),
            _t("reexam_reject", ("reexam_filed",), "reexam_not_accepted", reason=True),
            _t("reexam_uphold", ("reexam_accepted",), "reexam_upheld", reason=True),
            _t("reexam_overturn", ("reexam_accepted",), "reexam_overturned", reason=True),
        ),
    )
)
ACTIONS: tuple[str, ...] = tuple(t.name for t in MACHINE.transitions)


# --------------------------------------------------------------------------- helpers


def decision_at(session: Session, case: Case) -> datetime | None:
    """When the case entered its current state, when that state is a reviewable decision."""
    if case.state not in DECISIONS:
        return None
    for e in reversed(timeline.list_for(session, record_type="case", record_id=case.id)):
        if e.to_state == case.state:
            return e.at
    return None


def _notify(session: Session, case: Case, review: CaseReview) -> notify.Notification | None:
    """One message to the victim per review and stage (no grounds, no reason)."""
    if not catalogue.case_disclosed(case):
        return None
    contact = notices.victim_contact(session, case)
    if contact is None:
        return None
    channel, address = contact
    due = review.due_at.astimezone(CHINA_TZ).date().isoformat() if review.due_at else ""
    tail_zh = f"，办理期限 {due}" if due else ""
    tail_en = f", due by {due}" if due else ""
    return notify.enqueue(
        session,
        channel=channel,
        to=address,
        subject="SafeCity review / 复议复核进展" if channel == "email" else "",
        body=(
            f"【阳光警务】案件 {case.number}：{STAGE_ZH[review.state]}{tail_zh}。"
            f" SafeCity case {case.number}: review {review.state.replace('_', ' ')}{tail_en}."
        ),
        template="cases.review_stage",
        purpose="case review progress",
        idempotency_key=f"cases:review:{review.id}:{review.state}",
        org_id=case.org_id,
    )


def _clean_grounds(grounds: str) -> str:
    text = grounds.strip()
    if not text:
        raise InvalidInput("grounds are required")
    if len(text) > MAX_GROUNDS:
        raise InvalidInput(f"grounds must be at most {MAX_GROUNDS} characters")
    return text


def _check_window(opened_at: datetime, days: int, now: datetime, what: str) -> None:
    closes = end_of_day(opened_at, days)
    if now >= closes:
        last = (closes - timedelta(days=1)).date().isoformat()
        raise InvalidInput(f"the {what} window closed on {last} ({days} days)")


# --------------------------------------------------------------------------- filing


def _file(
    session: Session, *, case: Case, grounds: str, channel: str, principal: Principal
) -> CaseReview:
    text = _clean_grounds(grounds)
    at = decision_at(session, case)
    if at is None:
        raise Conflict(
            "the case has no decision open to review (not registered, closed, suspended)"
        )
    now = utcnow()
    rule = RULES[(case.state, "reconsideration")]
    _check_window(at, rule.file_days, now, "filing")
    taken = session.scalar(
        select(CaseReview.id).where(
            CaseReview.case_id == case.id,
            CaseReview.decision == case.state,
            CaseReview.decision_at == at,
        )
    )
    if taken is not None:
        raise Conflict("a review of this decision was already filed")
    review = CaseReview(
        case_id=case.id,
        org_id=case.org_id,
        decision=case.state,
        decision_at=at,
        state="filed",
        channel=channel,
        grounds=text,
        created_by=principal.id,
        created_at=now,
        stage_since=now,
        updated_at=now,
    )
    workflow.start(session, machine=MACHINE, record=review, principal=principal, public=True)
    session.flush()
    _set_due(session, review, now)
    audit.record(
        session,
        principal=principal,
        action="cases.review.file",
        target_type=RECORD,
        target_id=review.id,
        purpose="criminal review application",
        detail={"case": case.id, "decision": case.state, "channel": channel},
    )
    _notify(session, case, review)
    return review


def file_for_citizen(
    session: Session, *, principal: Principal, case_id: str, grounds: str
) -> CaseReview:
    """An officer files on the citizen's behalf (``cases:write`` in the case's scope). A
    case without a portal code (never registered) gets one, so the victim can follow."""
    if not principal.can(WRITE):
        raise PermissionDenied(f"missing permission {WRITE}")
    case = cases.get_case(session=session, principal=principal, case_id=case_id)
    review = _file(session, case=case, grounds=grounds, channel="console", principal=principal)
    notices.issue_code(session, case=case)
    return review


def file_from_portal(
    session: Session, *, client: str, number: str, code: str, grounds: str
) -> CaseReview | None:
    """The victim files after the number + code check; ``None`` is a portal miss."""
    case = portal.verify(
        session, client=client, number=number, code=code, action="cases.portal.review"
    )
    if case is None:
        return None
    return _file(session, case=case, grounds=grounds, channel="portal", principal=audit.SYSTEM)


# --------------------------------------------------------------------------- stages


def get_review(*, session: Session, principal: Principal, review_id: str) -> CaseReview:
    return rbac.get_in_scope(session, CaseReview, review_id, principal, what="review")


def list_reviews(
    *, session: Session, principal: Principal, state: str | None = None
) -> list[CaseReview]:
    stmt = select(CaseReview).where(rbac.scope_clause(principal, CaseReview.org_id))
    if state:
        stmt = stmt.where(CaseReview.state == state)
    return list(session.scalars(stmt.order_by(CaseReview.due_at, CaseReview.created_at).limit(500)))


def _case_follow_up(session: Session, principal: Principal, review: CaseReview) -> None:
    name = CASE_ON_OVERTURN.get(review.decision)
    case = session.get(Case, review.case_id)
    assert case is not None
    if name is not None and case.state == review.decision:
        try:
            CASE.transition(name)
        except (KeyError, InvalidInput):
            name = None
        else:
            cases.transition(
                session=session,
                principal=principal,
                case_id=case.id,
                name=name,
                reason=f"review {review.id} overturned the decision",
            )
            return
    audit.record(
        session,
        principal=principal,
        action="cases.review.case_pending",
        target_type="case",
        target_id=case.id,
        purpose="criminal review application",
        detail={"review": review.id, "decision": review.decision, "state": case.state},
    )


def reexam_org(session: Session, review: CaseReview) -> str:
    """The org that decides the 复核: the parent of the unit that decided the 复议
    (:class:`Conflict` when that unit has none: nothing above it in this system)."""
    unit = orgs.get(session=session, org_id=review.org_id)
    if unit.parent_id is None:
        raise Conflict(
            "the unit that decided the reconsideration has no higher level in this system "
            "to re-examine it; the applicant must apply to that authority directly"
        )
    return unit.parent_id


def _route_up(session: Session, principal: Principal, review: CaseReview, upper: str) -> None:
    """Give the review to ``upper`` (audited; on the review's internal timeline)."""
    unit = review.org_id
    review.org_id = upper
    timeline.add(
        session,
        record_type=RECORD,
        record_id=review.id,
        org_id=upper,
        kind="unit",
        actor_id=principal.id,
        note=f"re-examination goes to the next level up ({upper})",
    )
    audit.record(
        session,
        principal=principal,
        action="cases.review.route",
        target_type=RECORD,
        target_id=review.id,
        purpose="criminal review application",
        detail={"from": unit, "to": upper, "level": "reexamination"},
    )


def act(
    session: Session,
    *,
    principal: Principal,
    review_id: str,
    name: str,
    reason: str | None = None,
) -> CaseReview:
    """Apply a stage action (404 out of scope, 403, 409 illegal or no level above, 422 no
    reason / window). ``request_reexam`` hands the review to the next level up."""
    review = get_review(session=session, principal=principal, review_id=review_id)
    now = utcnow()
    upper: str | None = None
    if name == "request_reexam" and review.state in REEXAM_FROM:
        rule = RULES[(review.decision, "reexamination")]
        _check_window(review.stage_since, rule.file_days, now, "re-examination")
        upper = reexam_org(session, review)
    text = reason.strip() if reason and reason.strip() else None
    workflow.apply(
        session,
        machine=MACHINE,
        record=review,
        transition=name,
        principal=principal,
        fields={"reason": text},
        note=text,
    )
    review.alerted_state = None
    if upper is not None:
        _route_up(session, principal, review, upper)
    _set_due(session, review, now)
    if review.state in ("overturned", "reexam_overturned"):
        _case_follow_up(session, principal, review)
    case = session.get(Case, review.case_id)
    assert case is not None
    _notify(session, case, review)
    return review


# --------------------------------------------------------------------------- by the case


@dataclass(frozen=True)
class ReviewStatus:
    """A review as the case's own staff see it on the case: where it stands and who
    decides it, never the grounds or a reason."""

    id: str
    decision: str
    level: Level
    stage: str
    label_zh: str
    due_at: datetime | None
    org_id: str
    """The unit deciding the current level (the case's unit; the one above for 复核)."""


def case_reviews(*, session: Session, principal: Principal, case_id: str) -> list[ReviewStatus]:
    """The case's reviews, read in the **case's** scope (404 outside it): the station
    that owns the case follows a 复核 decided above it, without acting on it (stage
    actions go by the review's own ``org_id``)."""
    case = cases.get_case(session=session, principal=principal, case_id=case_id)
    return [
        ReviewStatus(
            id=r.id,
            decision=r.decision,
            level=level_of(r.state),
            stage=r.state,
            label_zh=STAGE_ZH[r.state],
            due_at=r.due_at,
            org_id=r.org_id,
        )
        for r in session.scalars(
            select(CaseReview)
            .where(CaseReview.case_id == case.id)
            .order_by(CaseReview.created_at, CaseReview.id)
        )
    ]


# --------------------------------------------------------------------------- public


@dataclass(frozen=True)
class PublicStage:
    at: datetime
    stage: str
    label_zh: str


@dataclass(frozen=True)
class PublicReview:
    decision: str
    stage: str
    due_at: datetime | None
    stages: list[PublicStage]


def public_reviews(session: Session, *, case: Case) -> list[PublicReview]:
    """The case's reviews as the portal shows them: stages, dates, deadline. No grounds,
    no reason, no names."""
    out: list[PublicReview] = []
    for r in session.scalars(
        select(CaseReview).where(CaseReview.case_id == case.id).order_by(CaseReview.created_at)
    ):
        stages = [
            PublicStage(at=e.at, stage=e.to_state, label_zh=STAGE_ZH[e.to_state])
            for e in timeline.list_for(
                session, record_type=RECORD, record_id=r.id, public_only=True
            )
            if e.kind in ("created", "transition") and e.to_state in STAGE_ZH
        ]
        out.append(PublicReview(decision=r.decision, stage=r.state, due_at=r.due_at, stages=stages))
    return out


def reexam_from_portal(
    session: Session, *, client: str, number: str, code: str
) -> CaseReview | None:
    """The victim asks for re-examination of the latest review of the case."""
    case = portal.verify(
        session, client=client, number=number, code=code, action="cases.portal.reexam"
    )
    if case is None:
        return None
    review = session.scalar(
        select(CaseReview)
        .where(CaseReview.case_id == case.id)
        .order_by(CaseReview.created_at.desc())
        .limit(1)
    )
    if review is None:
        raise Conflict("no review application on this case")
    return act(
        session,
        principal=audit.SYSTEM,  # the citizen, authenticated by number + code
        review_id=review.id,
        name="request_reexam",
    )
