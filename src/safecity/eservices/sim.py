"""A simulated load of e-service applications over working days, for the benchmark.

:func:`run` drives the real service layer (drafts prefilled from the registry, pulled
materials, uploads, idempotent submission, staff actions, supplements pausing the clock,
single-window fan-out, certificates issued through the registry) with simulated time:
each application arrives on a working day, is accepted, sometimes asked for a supplement
(answered after a few calendar days), and decided after a number of working days drawn
per item from a distribution bounded by its deadline (a few run late). Every step is
its own transaction at its own simulated moment. :func:`run_isolated` does the same in
a fresh SQLite database under a temporary folder.

The result has, per item, the median and p90 working days from submission to decision
(unpaused, on the holiday table), the share of materials pulled instead of uploaded and
the working days of the scripted single-window demo case (two departments in parallel).
The holiday table ends on 31 December 2026 (then two provisional years, see
:mod:`~safecity.eservices.workdays`): keep the simulated calendar inside the table.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from safecity.eservices import citizens, service
from safecity.eservices.catalogue import ServiceItem
from safecity.eservices.models import Application
from safecity.eservices.workdays import add_workdays, is_workday
from safecity.orgs import service as orgs
from safecity.orgs.models import Org
from safecity.platform.blobs import JPEG, PDF, PNG
from safecity.platform.db import Base, make_engine, make_session_factory
from safecity.platform.errors import SafeCityError
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.rbac import Principal
from safecity.settings import Settings

PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5b1e2a70000000049454e44ae426082"
)
JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"
CREDIT_CODE = "91310000MA1FL0000X"  # a well-formed unified social credit code

# answers the registry cannot prefill, per form
ANSWERS: dict[str, dict[str, dict[str, Any]]] = {
    "household-proof": {
        "proof_type": {"proof_type": "in-household"},
        "purpose": {"purpose": "school enrolment"},
        "declaration": {"declaration": True},
    },
    "no-criminal-record": {
        "where": {"apply_at": "household"},
        "purpose": {"purpose": "employment"},
        "declaration": {"declaration": True},
    },
    "generic": {"declaration": {"declaration": True}},
    "hk-macao-endorsement": {
        "region": {"region": "HK"},
        "endorsement": {"endorsement_type": "individual-tour", "entries": "1y-single"},
        "declaration": {"declaration": True},
    },
    "large-event-security-permit": {
        "organiser": {"organiser": "示例文化传播有限公司", "organiser_credit_code": CREDIT_CODE},
        "event": {"event_name": "跨年音乐会", "event_type": "performance"},
        "venue": {"venue": "示例体育馆", "venue_address": "上海市徐汇区漕溪北路1111号"},
        "dates": {"event_start": "2026-12-31", "event_end": "2026-12-31", "sessions": 1},
        "attendance": {"max_attendance": 8000, "ticketed": True, "security_staff": 300},
        "declaration": {"declaration": True},
    },
    "hotel-special-trade-permit": {
        "business": {
            "business_name": "示例精品酒店",
            "business_credit_code": CREDIT_CODE,
            "hotel_type": "hotel",
        },
        "premises": {"premises_address": "上海市黄浦区九江路200号", "premises_tenure": "owned"},
        "capacity": {"rooms": 48, "beds": 80},
        "security": {
            "security_manager": "李保卫",
            "security_staff": 4,
            "guest_registration_system": True,
        },
        "declaration": {"declaration": True},
    },
    "foreigner-work-residence": {
        "passport": {"passport_expiry": "2031-01-01"},
        "employer": {"employer_name": "Example Ltd", "employer_credit_code": "91310000MA1FL0000X"},
        "job": {
            "position": "Engineer",
            "start_date": "2026-12-01",
            "contract_months": 24,
            "annual_salary_cny": 600000,
        },
        "category": {"permit_category": "B"},
        "residence": {"residence_months": 24},
        "family": {"with_family": False},
        "declaration": {"declaration": True},
    },
}
SUPPLEMENT_SHARE = 0.15
REJECT_SHARE = 0.05
LATE_SHARE = 0.04
OPTIONAL_UPLOAD_SHARE = 0.3


@dataclass(frozen=True)
class ItemFigures:
    item_code: str
    count: int
    decided: int
    median_workdays: float | None
    p90_workdays: float | None
    deadline_workdays: int
    overdue: int
    late: int


@dataclass
class SimResult:
    applications: int
    items: list[ItemFigures]
    materials_pulled: int
    materials_uploaded: int
    share_pulled: float
    single_window_demo_workdays: int | None
    issued: int
    issue_failures: dict[str, int] = field(default_factory=dict)
    first_day: date | None = None
    last_day: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "applications": self.applications,
            "items": [f.__dict__ for f in self.items],
            "materials_pulled": self.materials_pulled,
            "materials_uploaded": self.materials_uploaded,
            "share_pulled": self.share_pulled,
            "single_window_demo_workdays": self.single_window_demo_workdays,
            "issued": self.issued,
            "issue_failures": self.issue_failures,
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
        }


def _moment(day: date, hour_local: int) -> datetime:
    """A UTC moment at ``hour_local`` Beijing time on ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=hour_local - 8)


def _citizen(n: int, *, foreign: bool) -> Principal:
    return Principal(
        id=f"sim-{'f' if foreign else 'c'}{n:06d}",
        kind="user",
        username=f"sim-citizen-{n}",
        roles=frozenset({"citizen"}),
        org_id="",
        visible_org_ids=frozenset(),
        auth_method="sim",
    )


def _staff(org: Org) -> Principal:
    return Principal(
        id=f"sim-staff-{org.code}",
        kind="user",
        username=f"sim-staff-{org.code}",
        roles=frozenset({"department_staff"}),
        org_id=org.id,
        visible_org_ids=frozenset({org.id}),
        auth_method="sim",
    )


def _ensure_city(runtime: Runtime) -> None:
    with runtime.sessions.begin() as s:
        if s.scalars(select(Org).where(Org.kind == "city")).first() is None:
            orgs.create(
                session=s,
                code="sim-city",
                kind="city",
                name_zh="模拟市",
                name_en="Simulated city",
                actor=audit.SYSTEM,
            )


def _upload_bytes(accept: tuple[str, ...]) -> tuple[str, bytes, str]:
    if PDF in accept:
        return PDF, PDF_BYTES, "scan.pdf"
    if PNG in accept:
        return PNG, PNG_BYTES, "photo.png"
    return JPEG, JPEG_BYTES, "photo.jpg"


def _apply(
    runtime: Runtime,
    who: Principal,
    item: ServiceItem,
    moment: datetime,
    rng: random.Random,
    key: str,
) -> str:
    """Start, fill, upload and submit one application; returns its id."""
    with runtime.sessions.begin() as s:
        app = service.start_application(session=s, principal=who, item_code=item.code, now=moment)
        for page, answers in ANSWERS[item.form].items():
            service.save_page(
                session=s,
                principal=who,
                application_id=app.id,
                page_id=page,
                answers=answers,
                now=moment,
            )
        detail = service.get_application(session=s, principal=who, application_id=app.id)
        for m in detail.materials:
            if m.provided:
                continue  # pulled from an e-licence (or another part's output)
            if not m.required and rng.random() >= OPTIONAL_UPLOAD_SHARE:
                continue
            ctype, data, name = _upload_bytes(tuple(m.accept))
            service.add_attachment(
                session=s,
                principal=who,
                application_id=app.id,
                material_code=m.code,
                filename=name,
                content_type=ctype,
                data=data,
                now=moment,
            )
        service.submit(
            session=s, principal=who, application_id=app.id, idempotency_key=key, now=moment
        )
        return app.id


@dataclass(order=True)
class _Step:
    at: datetime
    seq: int
    app_id: str = field(compare=False)
    action: str = field(compare=False)
    actor: Principal = field(compare=False)
    comment: str | None = field(default=None, compare=False)


def _plan(
    app_id: str,
    submitted: date,
    workdays: int,
    staff: Principal,
    applicant: Principal,
    rng: random.Random,
    seq: list[int],
    *,
    decide_in: int | None = None,
    issue: bool = True,
) -> list[_Step]:
    """Accept (the same day for a one-day item, else the next working day), maybe ask for
    a supplement, decide within the deadline (a few late), issue the same day. With
    ``decide_in`` the case is scripted: no supplement, approved on that working day."""

    def step(
        day: date, hour: int, action: str, actor: Principal, comment: str | None = None
    ) -> _Step:
        seq[0] += 1
        return _Step(_moment(day, hour), seq[0], app_id, action, actor, comment)

    scripted = decide_in is not None
    steps: list[_Step] = []
    if workdays > 1:
        steps.append(step(add_workdays(submitted, 1), 9, "accept", staff))
    else:
        steps.append(step(submitted, 11, "accept", staff))
    if decide_in is None:
        mode = max(1.0, workdays * 0.4)
        decide_in = round(rng.triangular(1, workdays, mode))
        if rng.random() < LATE_SHARE:
            decide_in = workdays + rng.randint(1, 3)
    decide_in = max(1, decide_in)
    pauses: list[tuple[date, date]] = []
    if not scripted and decide_in >= 2 and rng.random() < SUPPLEMENT_SHARE:
        ask_day = add_workdays(submitted, decide_in // 2)
        steps.append(
            step(ask_day, 11, "request_supplement", staff, "请补正材料 / please supplement")
        )
        back = ask_day + timedelta(days=rng.randint(1, 5))
        steps.append(step(back, 20, "supplement", applicant))
        pauses.append((ask_day + timedelta(days=1), back))
    decide_day = add_workdays(submitted, decide_in, pauses)
    if not scripted and rng.random() < REJECT_SHARE:
        steps.append(step(decide_day, 16, "reject", staff, "不符合条件 / not eligible"))
    else:
        steps.append(step(decide_day, 16, "approve", staff))
        if issue:
            steps.append(step(decide_day, 17, "issue", staff))
    return steps


def run(
    runtime: Runtime,
    *,
    applications: int = 300,
    seed: int = 10,
    start: date = date(2026, 3, 2),
    arrival_workdays: int = 100,
    demo: bool = True,
) -> SimResult:
    """Simulate ``applications`` applications arriving over ``arrival_workdays`` working
    days from ``start`` (plus the scripted single-window demo case); returns the figures."""
    if applications < 0 or arrival_workdays < 1:
        raise ValueError("applications must be >= 0 and arrival_workdays >= 1")
    rng = random.Random(seed)
    _ensure_city(runtime)
    cat = service.catalogue()
    items = list(cat.items.values())
    staff: dict[str, Principal] = {}
    with runtime.sessions.begin() as s:
        for dept in cat.departments:
            org = service.department_org(s, dept)
            staff[dept] = _staff(org)
    seq = [0]
    steps: list[_Step] = []
    first = start if is_workday(start) else add_workdays(start, 1)
    last = first
    demo_parent: str | None = None
    people: list[tuple[Principal, ServiceItem, date]] = []
    for n in range(applications):
        item = rng.choice(items)
        day = add_workdays(first, rng.randrange(arrival_workdays))
        people.append((_citizen(n, foreign=item.single_window), item, day))
    people.sort(key=lambda p: p[2])
    if demo:
        demo_day = add_workdays(first, arrival_workdays // 2)
        people.append(
            (_citizen(999_999, foreign=True), cat.get("foreigner-work-residence"), demo_day)
        )
    with runtime.sessions.begin() as s:
        for who, item, _ in people:
            n = int(who.id[-6:])
            profile = (
                citizens.foreigner_profile(n)
                if item.single_window
                else citizens.resident_profile(n)
            )
            citizens.seed_profile(s, user_id=who.id, profile=profile)
    for idx, (who, item, day) in enumerate(people):
        is_demo = demo and idx == len(people) - 1
        app_id = _apply(runtime, who, item, _moment(day, 10), rng, key=f"sim-{seed}-{idx:06d}")
        targets: list[tuple[str, str, int, int | None]] = []
        if item.single_window:
            with runtime.sessions() as s:
                kids = s.scalars(select(Application).where(Application.parent_id == app_id)).all()
                for kid in kids:
                    scripted = (
                        {"hr": 4, "psb-exit-entry": 5}.get(kid.department) if is_demo else None
                    )
                    targets.append((kid.id, kid.department, kid.deadline_workdays, scripted))
            if is_demo:
                demo_parent = app_id
        else:
            targets.append((app_id, item.departments[0], item.deadline.workdays, None))
        for target_id, dept, workdays, scripted in targets:
            steps.extend(
                _plan(
                    target_id,
                    day,
                    workdays,
                    staff[dept],
                    who,
                    rng,
                    seq,
                    decide_in=scripted,
                    issue=not item.single_window,  # parts are issued together, by the platform
                )
            )
    failures: dict[str, int] = {}
    for st in sorted(steps):
        last = max(last, st.at.date())
        try:
            with runtime.sessions.begin() as s:
                service.act(
                    session=s,
                    principal=st.actor,
                    application_id=st.app_id,
                    action=st.action,
                    comment=st.comment,
                    now=st.at,
                )
        except SafeCityError as exc:
            key = f"{st.action}:{type(exc).__name__}"
            failures[key] = failures.get(key, 0) + 1
    with runtime.sessions.begin() as s:
        figures = service.stats(session=s, principal=audit.SYSTEM, today=last)
        demo_days: int | None = None
        if demo_parent is not None:
            parent = s.get(Application, demo_parent)
            demo_days = None if parent is None else parent.finished_workdays
        by_code = {r["item_code"]: r for r in figures["items"]}
        issued = len(
            s.scalars(select(Application.id).where(Application.certificate_id.is_not(None))).all()
        )
    return SimResult(
        applications=len(people),
        items=[
            ItemFigures(
                item_code=code,
                count=r["count"],
                decided=r["finished"],
                median_workdays=r["median_workdays"],
                p90_workdays=r["p90_workdays"],
                deadline_workdays=cat.get(code).deadline.workdays,
                overdue=r["overdue"],
                late=r["late"],
            )
            for code, r in sorted(by_code.items())
        ],
        materials_pulled=figures["materials_pulled"],
        materials_uploaded=figures["materials_uploaded"],
        share_pulled=figures["share_pulled"],
        single_window_demo_workdays=demo_days,
        issued=issued,
        issue_failures=failures,
        first_day=first,
        last_day=last,
    )


def run_isolated(**kwargs: Any) -> SimResult:
    """:func:`run` in a fresh SQLite database in a temporary folder (deleted after)."""
    import safecity.models  # noqa: F401  (every table, for create_all)

    with tempfile.TemporaryDirectory(prefix="safecity-eservices-sim-") as tmp:
        root = Path(tmp)
        settings = Settings(
            var_dir=root / "var",
            database_url=f"sqlite:///{root / 'sim.db'}",
            key_dir=root / "keys",
            log_json=False,
        )
        engine = make_engine(settings.database_url)
        try:
            Base.metadata.create_all(engine)
            runtime = Runtime(
                settings=settings, engine=engine, sessions=make_session_factory(engine)
            )
            return run(runtime, **kwargs)
        finally:
            engine.dispose()
