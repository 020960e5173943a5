"""Actions: the engine's decisions as tasks with an owner, a deadline and an outcome.

=============== ============================================= ======== =====================
action          who acts                                      deadline goes to
=============== ============================================= ======== =====================
warn            the anti-fraud centre's app/SMS gateway        5 min   the city centre
callback        an operator of the centre calls the person    15 min   the city centre
visit           officers of the station where the person is   30 min   the station (+ alert)
stop_pay        the bank holds the transfer                    5 min   the city centre
block_number    a reviewer approves the proposed entry        24 h     the city centre
block_domain    a reviewer approves the proposed entry        24 h     the city centre
=============== ============================================= ======== =====================

A visit also raises an alert at the station (category ``fraud_victim_visit``), so it
reaches the officers' queue and terminals like every other alert. The person is known
here only by pseudonym and by the serving cell tower's place (routing the visit; the
action keeps just an H3 cell of resolution 7, about 5 km², for the dashboard): the
operator, who holds the mapping, puts the centre in touch. Closing an action records
its outcome — dissuaded, lost money, not a target, money frozen… — which is the label
the models learn from.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.fraud import indicators
from safecity.fraud.engine import Decision
from safecity.fraud.events import ACTION_OPENED, SOURCE
from safecity.fraud.identifiers import unseal
from safecity.fraud.models import ACTIONS, OUTCOMES, Action
from safecity.fraud.scoring import RULES_VERSION
from safecity.fraud.workflow import ACTION
from safecity.orgs import service as orgs
from safecity.platform import geo, outbox, workflow
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, InvalidInput
from safecity.security import audit, rbac
from safecity.security.rbac import Principal

DEADLINES: dict[str, timedelta] = {
    "warn": timedelta(minutes=5),
    "callback": timedelta(minutes=15),
    "visit": timedelta(minutes=30),
    "stop_pay": timedelta(minutes=5),
    "block_number": timedelta(hours=24),
    "block_domain": timedelta(hours=24),
}
VISIT_ALERT = "fraud_victim_visit"
VISIT_TITLE = "alerts.fraud_victim_visit"
COARSE_H3 = 7


def _city(session: Session) -> str:
    cities, _ = orgs.list_orgs(session=session, kind="city", limit=1)
    if not cities:
        raise InvalidInput("no city organisation yet: create the city first")
    return cities[0].id


BLOCKS = {"block_number": "phone", "block_domain": "domain"}


def _propose(session: Session, decision: Decision) -> str | None:
    """A block-list proposal for a reviewer, named by the identifier sealed at intake;
    an identifier already on the list is not proposed again (its entry is returned)."""
    kind = BLOCKS[decision.action]
    pseudonyms = indicators.pseudonymiser(session)
    value = unseal(pseudonyms, kind, decision.sealed or "")
    if pseudonyms.of_normalised(kind, value) != decision.subject:
        raise InvalidInput("a sealed identifier does not match its pseudonym")
    reasons = ", ".join(decision.reasons)
    try:
        entry = indicators.add(
            session=session,
            principal=audit.SYSTEM,
            kind=kind,
            value=value,
            source="model",
            evidence=f"engine rules {RULES_VERSION}: score {decision.score:.2f} ({reasons})",
            confidence=min(1.0, max(0.01, decision.score)),
            reasons=list(decision.reasons),
        )
    except Conflict as exc:
        existing = exc.extra.get("indicator_id")
        return str(existing) if existing else None
    return entry.id


def _existing(session: Session, decision: Decision) -> Action | None:
    return session.scalars(
        select(Action).where(
            Action.action == decision.action,
            Action.subject == decision.subject,
            Action.record_id == decision.record_id,
        )
    ).first()


def record(
    session: Session, decisions: Iterable[Decision], *, city_id: str | None = None
) -> list[Action]:
    """Persist the engine's decisions as open actions (idempotent: a decision replayed
    after a restart finds its action). Visits also raise a station alert."""
    created: list[Action] = []
    now = utcnow()
    for decision in decisions:
        if decision.action not in ACTIONS:
            raise InvalidInput(f"unknown fraud action {decision.action!r}")
        if _existing(session, decision) is not None:
            continue
        city_id = city_id or _city(session)
        cell = None
        org_id = city_id
        if decision.lat is not None and decision.lng is not None:
            cell = geo.h3_cell(lat=decision.lat, lng=decision.lng, resolution=COARSE_H3)
            if decision.action == "visit":
                station = orgs.org_for_point(session=session, lat=decision.lat, lng=decision.lng)
                if station is not None:
                    org_id = station.id
        decided_at = datetime.fromtimestamp(decision.at, UTC)
        action = Action(
            action=decision.action,
            subject=decision.subject,
            via=decision.via,
            record_id=decision.record_id,
            score=decision.score,
            reasons=list(decision.reasons),
            rules_version=RULES_VERSION,
            amount_cents=decision.amount_cents,
            h3_cell=cell,
            org_id=org_id,
            due_at=now + DEADLINES[decision.action],
            decided_at=decided_at,
            created_at=now,
        )
        workflow.start(session, machine=ACTION, record=action, principal=audit.SYSTEM)
        if decision.action == "visit" and decision.lat is not None and decision.lng is not None:
            alert = alerts.raise_alert(
                session,
                source="fraud.engine",
                category=VISIT_ALERT,
                severity="high",
                title_key=VISIT_TITLE,
                lat=decision.lat,
                lng=decision.lng,
                org_id=org_id,
                dedup_key=f"fraud:visit:{decision.subject}",
                occurred_at=decided_at,
                detail={
                    "fraud_action_id": action.id,
                    "score": decision.score,
                    "reasons": list(decision.reasons),
                },
            )
            action.alert_id = alert.id
        if decision.action in BLOCKS and decision.sealed:
            action.indicator_id = _propose(session, decision)
        audit.record(
            session,
            principal=audit.SYSTEM,
            action="fraud.action.open",
            target_type=ACTION.record_type,
            target_id=action.id,
            detail={"action": decision.action, "org": org_id, "score": decision.score},
        )
        outbox.emit(
            session,
            type=ACTION_OPENED,
            source=SOURCE,
            org_id=org_id,
            payload={
                "action_id": action.id,
                "action": action.action,
                "subject": action.subject,
                "org_id": org_id,
                "score": action.score,
                "reasons": action.reasons,
                "due_at": action.due_at.isoformat(),
            },
        )
        created.append(action)
    return created


# --------------------------------------------------------------------------- work


def scoped_query(principal: Principal) -> Select[Any]:
    return select(Action).where(rbac.scope_clause(principal, Action.org_id))


def get(*, session: Session, principal: Principal, action_id: str) -> Action:
    return rbac.get_in_scope(session, Action, action_id, principal, what="fraud action")


def list_actions(
    *,
    session: Session,
    principal: Principal,
    state: str | None = None,
    action: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Action]:
    query = scoped_query(principal).order_by(Action.created_at.desc(), Action.id)
    if state:
        query = query.where(Action.state == state)
    if action:
        query = query.where(Action.action == action)
    return list(session.scalars(query.limit(min(limit, 500)).offset(offset)))


def close(
    *, session: Session, principal: Principal, action_id: str, outcome: str, notes: str = ""
) -> Action:
    """Close an open action with its outcome (:data:`~safecity.fraud.models.OUTCOMES`)."""
    action = get(session=session, principal=principal, action_id=action_id)
    allowed = OUTCOMES[action.action]
    if outcome not in allowed:
        raise InvalidInput(f"outcome of a {action.action} must be one of {', '.join(allowed)}")
    workflow.apply(
        session,
        machine=ACTION,
        record=action,
        transition="close",
        principal=principal,
        note=f"{outcome}: {notes.strip()[:500]}" if notes.strip() else outcome,
        fields={"outcome": outcome, "notes": notes.strip()},
    )
    return action


def expire_overdue(*, session: Session, now: datetime | None = None, limit: int = 1000) -> int:
    """Expire open actions whose deadline passed long ago (a day): the job keeps the open
    list to what can still be done; how many."""
    cutoff = (now or utcnow()) - timedelta(days=1)
    due = session.scalars(
        select(Action).where(Action.state == "open", Action.due_at <= cutoff).limit(limit)
    ).all()
    for action in due:
        workflow.apply(
            session,
            machine=ACTION,
            record=action,
            transition="expire",
            principal=audit.SYSTEM,
            note="deadline passed",
        )
    return len(due)
