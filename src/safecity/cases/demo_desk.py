"""The demo duty desk: in ``safecity demo``, cases flow from the simulator's alerts.

The simulator raises alerts but nobody at a demo opens cases from them, so the case console
and the public portal would stay empty. The desk plays the station's duty officer and its
supervisor. Every minute (job :data:`JOB`, registered only when the setting
``demo_duty_desk`` is on: ``safecity demo`` sets ``SAFECITY_DEMO_DUTY_DESK=true``):

1. **opens** a case (``source="alert"``) from at most :data:`MAX_OPEN` new alerts of the
   categories in :data:`CASE_TYPE_OF` that have no case yet, adds a victim with synthetic,
   obviously fictional data, and registers it, which issues the victim's portal number +
   code through the ordinary notification path (:mod:`safecity.cases.notices`; the log
   sender by default);
2. **moves along** at most :data:`MAX_ADVANCE` of its older cases one step each, with a
   public note the portal shows: registered → investigating → the officer asks for
   ``solve`` (or ``close``) → the supervisor approves it, or sends it back once with a
   comment (:mod:`safecity.cases.approvals`) and the officer asks again.

Categories (from the simulator's planted incidents and the starter rules): ``theft``
(e-bike battery theft at a charging cabinet) and ``intrusion`` (repeated intrusion, a
forced door: burglary) open a ``theft`` case; ``high_altitude_throw`` opens an ``other``
case (高空抛物罪, 刑法 第291条之二, has no type of its own in the catalogue). Fires, fire
hazards, group rentals, traffic and parking are not crimes against a victim and are left
alone. A share of :data:`SHARE_PERCENT` % of the city's alerts is taken, chosen by a hash of
the alert id (stable, so a skipped alert stays skipped); those in the demo users' own
scope are always taken, so the demo logins see cases in their consoles.

Who acts: the demo users ``officer`` (a Huangpu station) and ``supervisor`` (the Huangpu
district) for what is in their scope; elsewhere the service principal :data:`DESK`
(``demo-duty-desk``, officer + supervisor roles, city-wide), because the simulator's
sensors are spread over the whole city. Every step goes through the cases services, so it
is audited and scoped like a person's. The desk's cases carry an internal timeline entry
of kind :data:`MARK`: only they are moved along, never a case a person opened.

Idempotent per alert: an alert that has a case (``cases.alert_id``) never opens another
(the job runs once at a time). Each alert and each step is its own transaction: one
failure is reported and the rest go on.

``safecity demo`` also calls :func:`starter_lookup` while preparing, so one case is ready
at start and its number + code can be printed: the code exists in clear only in the
victim's notification, so it is read there in the transaction that issued it. Each run of
``safecity demo`` opens one such case (a code cannot be recovered later).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from safecity.alerts import service as alerts
from safecity.alerts.models import Alert
from safecity.cases import approvals
from safecity.cases import service as cases
from safecity.cases.models import Case
from safecity.cases.schemas import PersonIn
from safecity.cases.work_models import CaseApproval
from safecity.orgs import service as orgs
from safecity.platform import geo, jobs, timeline
from safecity.platform.db import new_id, transaction, utcnow
from safecity.platform.notify import Notification
from safecity.platform.runtime import Runtime
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.security.rbac import Principal

log = logging.getLogger("safecity.cases.demo_desk")

JOB = "cases.demo_duty_desk"
CASE_TYPE_OF: dict[str, str] = {
    "theft": "theft",
    "intrusion": "theft",
    "high_altitude_throw": "other",
}
"""Alert category → case type: the categories the desk opens cases for."""
SHARE_PERCENT = 40
MAX_OPEN = 3
MAX_ADVANCE = 5
STEP_AFTER = timedelta(minutes=3)
"""A case moves on once it has rested this long (so the portal timeline grows visibly)."""
LOOKBACK = timedelta(hours=6)
"""Only alerts raised this recently are new enough to open a case."""
MARK = "demo_desk"
OFFICER = "officer"
SUPERVISOR = "supervisor"
SEED_SOURCE = "demo.desk"

DESK = Principal(
    id="demo-duty-desk",
    kind="service",
    username="demo-duty-desk",
    roles=frozenset({"officer", "supervisor"}),
    org_id="",
    visible_org_ids=None,
)
"""The desk's own principal, for alerts outside the demo users' scope."""

# Obviously fictional victims: the Chinese placeholder names (张三, 李四 …) marked 演示.
_NAMES = ("张三", "李四", "王五", "赵六", "孙七", "周八", "吴九", "郑十")
_CODE_IN_BODY = re.compile(r"查询码 ([0-9A-Z]{8})")

NOTE_REGISTERED = (
    "已根据报警立案，民警已联系报案人。 Registered from the alert; officers contacted the victim."
)
NOTES_INVESTIGATING = (
    "民警已到现场勘查，正在调取周边监控。"
    " Officers examined the scene and are collecting CCTV footage.",
    "已走访周边商户和住户，收集线索。 Officers are canvassing nearby shops and residents.",
)
NOTE_REQUEST = (
    "侦查工作取得进展，已报请审批。 The investigation made progress; a decision awaits approval."
)
SUMMARY = {
    "solve": "嫌疑人已查获，涉案财物已追回。 Suspect identified and property recovered.",
    "close": "经侦查，依法结案。 Closed after investigation.",
}
SEND_BACK = "请补充监控取证情况后再报。 Please add the CCTV evidence before resubmitting."
NOTE_DONE = {
    "solve": "案件已破，感谢您的配合。 The case is solved; thank you for your help.",
    "close": "案件已依法办结，感谢您的配合。 The case is closed; thank you for your help.",
}


@dataclass(frozen=True)
class Crew:
    """Who handles a case: the officer opens and investigates, the supervisor approves."""

    officer: Principal
    supervisor: Principal

    @property
    def demo_users(self) -> bool:
        return self.officer is not DESK

    def sees(self, org_id: str) -> bool:
        return self.officer.sees_org(org_id) and self.supervisor.sees_org(org_id)


@dataclass(frozen=True)
class PortalLookup:
    """A case number and its portal code, as the victim received them."""

    number: str
    code: str


@dataclass
class DeskReport:
    opened: list[str] = field(default_factory=list)
    """Ids of the cases opened."""
    advanced: list[tuple[str, str]] = field(default_factory=list)
    """(case id, step) of every step taken."""
    lookups: list[PortalLookup] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- who acts


def _user(session: Session, username: str) -> Principal | None:
    user = session.scalars(select(User).where(User.username == username)).one_or_none()
    if user is None or not user.active:
        return None
    return principal_for(session=session, user=user, auth_method="token")


def crews(session: Session) -> list[Crew]:
    """The crews, narrowest scope first: the demo officer with the demo supervisor, the
    demo supervisor alone (the district's other stations), then the desk (city-wide)."""
    found: list[Crew] = []
    officer, supervisor = _user(session, OFFICER), _user(session, SUPERVISOR)
    if supervisor is not None:
        if officer is not None:
            found.append(Crew(officer, supervisor))
        found.append(Crew(supervisor, supervisor))
    found.append(Crew(DESK, DESK))
    return found


def crew_for(crew_list: list[Crew], org_id: str) -> Crew:
    return next(c for c in crew_list if c.sees(org_id))


def in_share(alert_id: str, percent: int = SHARE_PERCENT) -> bool:
    """Whether the alert is in the desk's share (stable: a hash of its id)."""
    digest = hashlib.sha256(alert_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < percent


# --------------------------------------------------------------------------- opening


def fictional_victim(seed: str) -> PersonIn:
    """A victim no one could mistake for a real person: 张三（演示） and a 138-0000 number."""
    rng = random.Random(seed)
    return PersonIn(
        role="victim",
        name=f"{rng.choice(_NAMES)}（演示）",
        phone=f"1380000{rng.randrange(10_000):04d}",
        address="演示路1号 (fictional)",
    )


def _code_sent(session: Session, case: Case) -> str | None:
    """The portal code from the victim's notification (the only place it is in clear)."""
    note = session.scalar(
        select(Notification).where(Notification.idempotency_key == f"cases:{case.id}:code")
    )
    found = _CODE_IN_BODY.search(note.body) if note is not None else None
    return found.group(1) if found else None


def has_case(session: Session, alert_id: str) -> bool:
    return session.scalar(select(Case.id).where(Case.alert_id == alert_id).limit(1)) is not None


def open_from_alert(session: Session, *, alert: Alert, crew: Crew) -> tuple[Case, str | None]:
    """Open, mark, add the victim and register: returns the case and the code it issued.
    :class:`ValueError` if the alert already has a case."""
    if has_case(session, alert.id):
        raise ValueError(f"alert {alert.id} already has a case")
    officer = crew.officer
    case = cases.open_case(
        session,
        principal=officer,
        source="alert",
        case_type=CASE_TYPE_OF.get(alert.category, "other"),
        alert_id=alert.id,
    )
    timeline.add(
        session,
        record_type="case",
        record_id=case.id,
        org_id=case.org_id,
        kind=MARK,
        actor_id=officer.id,
        note="演示值班台 / demo duty desk",
    )
    cases.add_person(
        session=session, principal=officer, case_id=case.id, data=fictional_victim(alert.id)
    )
    cases.transition(session=session, principal=officer, case_id=case.id, name="register")
    cases.add_note(
        session=session, principal=officer, case_id=case.id, text=NOTE_REGISTERED, public=True
    )
    return case, _code_sent(session, case)


def _new_alerts(session: Session, now: datetime) -> list[Alert]:
    """Alerts of the desk's categories raised lately without a case, newest first."""
    has = exists().where(Case.alert_id == Alert.id)
    return list(
        session.scalars(
            select(Alert)
            .where(
                Alert.category.in_(sorted(CASE_TYPE_OF)),
                Alert.state != "false_alarm",
                Alert.created_at >= now - LOOKBACK,
                ~has,
            )
            .order_by(Alert.created_at.desc(), Alert.id)
            .limit(500)
        )
    )


# --------------------------------------------------------------------------- moving along


def _variant(case_id: str, salt: str, n: int) -> int:
    return hashlib.sha256(f"{salt}:{case_id}".encode()).digest()[0] % n


def step(session: Session, *, case: Case, crew: Crew, now: datetime) -> str | None:
    """Move one desk case one step if it rested :data:`STEP_AFTER`; the step's name."""
    due = now - STEP_AFTER
    officer, supervisor = crew.officer, crew.supervisor

    def note(text: str) -> None:
        cases.add_note(session=session, principal=officer, case_id=case.id, text=text, public=True)

    if case.state in ("received", "registered") and case.updated_at <= due:
        name = "register" if case.state == "received" else "investigate"
        cases.transition(session=session, principal=officer, case_id=case.id, name=name)
        note(
            NOTE_REGISTERED
            if name == "register"
            else NOTES_INVESTIGATING[_variant(case.id, "n", 2)]
        )
        return name
    if case.state != "investigating":
        return None
    pending = approvals.pending(session, case.id)
    ending = "close" if _variant(case.id, "end", 10) < 3 else "solve"
    if pending is None:
        latest = approvals.latest(session, case.id)
        since = latest.decided_at if latest is not None and latest.decided_at else case.updated_at
        if since > due:
            return None
        approvals.request(
            session=session,
            principal=officer,
            case_id=case.id,
            transition=ending,
            summary=SUMMARY[ending],
        )
        if latest is None:
            note(NOTE_REQUEST)
        return "request"
    if pending.requested_at > due:
        return None
    if _variant(case.id, "back", 4) == 0 and not _sent_back_before(session, case.id):
        approvals.send_back(
            session=session, principal=supervisor, case_id=case.id, comment=SEND_BACK
        )
        return "send_back"
    approvals.approve(session=session, principal=supervisor, case_id=case.id)
    note(NOTE_DONE[pending.transition])
    return "approve"


def _sent_back_before(session: Session, case_id: str) -> bool:
    found = session.scalar(
        select(CaseApproval.id)
        .where(CaseApproval.case_id == case_id, CaseApproval.state == "sent_back")
        .limit(1)
    )
    return found is not None


def _desk_case_ids(session: Session, limit: int) -> list[str]:
    marked = select(timeline.TimelineEntry.record_id).where(
        timeline.TimelineEntry.record_type == "case", timeline.TimelineEntry.kind == MARK
    )
    return list(
        session.scalars(
            select(Case.id)
            .where(
                Case.id.in_(marked),
                Case.state.in_(("received", "registered", "investigating")),
            )
            .order_by(Case.updated_at, Case.id)
            .limit(limit)
        )
    )


# --------------------------------------------------------------------------- the runs


def run(
    runtime: Runtime,
    *,
    now: datetime | None = None,
    max_open: int = MAX_OPEN,
    max_advance: int = MAX_ADVANCE,
) -> DeskReport:
    """One pass of the desk: open cases from new alerts, then move older cases along."""
    now = now or utcnow()
    report = DeskReport()
    with runtime.sessions() as s:
        crew_list = crews(s)
        candidates = [(a.id, a.org_id) for a in _new_alerts(s, now)]
    for alert_id, org_id in candidates:
        if len(report.opened) >= max_open:
            break
        crew = crew_for(crew_list, org_id)
        if not crew.demo_users and not in_share(alert_id):
            continue
        try:
            with transaction(runtime.sessions) as s:
                alert = s.get(Alert, alert_id)
                if alert is None or has_case(s, alert_id):
                    continue
                case, code = open_from_alert(s, alert=alert, crew=crew)
                report.opened.append(case.id)
                if code is not None:
                    report.lookups.append(PortalLookup(case.number, code))
        except Exception as exc:  # one alert must not stop the desk
            log.exception("demo duty desk: alert %s", alert_id)
            report.failures.append(f"alert {alert_id}: {type(exc).__name__}")
    with runtime.sessions() as s:
        case_ids = _desk_case_ids(s, limit=max_advance * 10)
    for case_id in case_ids:
        if len(report.advanced) >= max_advance:
            break
        try:
            with transaction(runtime.sessions) as s:
                row = s.get(Case, case_id)
                if row is None:
                    continue
                done = step(s, case=row, crew=crew_for(crew_list, row.org_id), now=now)
                if done is not None:
                    report.advanced.append((case_id, done))
        except Exception as exc:
            log.exception("demo duty desk: case %s", case_id)
            report.failures.append(f"case {case_id}: {type(exc).__name__}")
    return report


def _seed_point(session: Session, org_id: str) -> tuple[float, float]:
    """(lat, lng) of a point inside the org's area (Shanghai's centre without one)."""
    org = orgs.get(session=session, org_id=org_id)
    if org.area:
        point = geo.area_geometry(org.area).representative_point()
        return point.y, point.x
    return 31.2304, 121.4737


def starter_lookup(runtime: Runtime) -> PortalLookup | None:
    """Open one case for ``safecity demo`` to print: from a free alert of a desk category
    in the demo officer's scope, else from an alert raised now at the officer's station."""
    with transaction(runtime.sessions) as s:
        crew = crews(s)[0]
        scope = crew.officer.visible_org_ids
        query = (
            select(Alert)
            .where(
                Alert.category.in_(sorted(CASE_TYPE_OF)),
                Alert.state != "false_alarm",
                ~exists().where(Case.alert_id == Alert.id),
            )
            .order_by(Alert.created_at.desc(), Alert.id)
            .limit(1)
        )
        if scope is not None:
            query = query.where(Alert.org_id.in_(sorted(scope)))
        alert = s.scalar(query)
        if alert is None:
            home = crew.officer.org_id or None
            lat, lng = _seed_point(s, home) if home else (31.2304, 121.4737)
            alert = alerts.raise_alert(
                s,
                source=SEED_SOURCE,
                category="theft",
                severity="medium",
                title_key="alerts.ebike_battery_theft",
                lat=lat,
                lng=lng,
                dedup_key=f"demo-desk:seed:{new_id()}",
                occurred_at=utcnow(),
                detail={"demo": True},
                org_id=home,
            )
            crew = crew_for(crews(s), alert.org_id)
        case, code = open_from_alert(s, alert=alert, crew=crew)
        return PortalLookup(case.number, code) if code is not None else None


# --------------------------------------------------------------------------- the job


def desk_job(ctx: jobs.JobContext) -> int:
    """Demo only: open cases from simulated alerts and move them along (demo duty desk)."""
    if not ctx.runtime.settings.demo_duty_desk:
        return 0
    report = run(ctx.runtime, now=ctx.now)
    for failure in report.failures:
        ctx.fail_item(failure)
    return len(report.opened) + len(report.advanced)


def register(registry: jobs.JobRegistry | None = None) -> jobs.Job:
    """Register :data:`JOB` (every minute); idempotent."""
    return (registry or jobs.registry).register(JOB, desk_job, every="1m")
