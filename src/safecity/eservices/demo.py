"""The demo citizen gets a no-criminal-record certificate (for ``safecity demo``).

:func:`simulate_no_criminal_record` drives the same service functions the citizen pages and
the staff console call. The demo citizen (user ``citizen``) applies for the
no-criminal-record certificate: the draft is prefilled from the citizen registry, the
identity material is pulled from the resident-ID e-licence, the remaining pages are
answered and the application is submitted with a fixed idempotency key. A case worker of
the handling police-station department accepts, reviews, approves and issues it. The
citizen shows the certificate as an offline QR (hotel profile: name and the last four ID
digits) and a verifier checks it **offline**, from the signed trust bundle and its trust
anchor alone: VALID.

A second application goes the same way; its QR is shown, then a supervisor of the
department revokes the certificate and an offline verifier with a fresh bundle reads
REVOKED. The first certificate stays issued, so whoever runs ``make demo`` can log in as
the citizen and find it under "My certificates".

The bundle, its anchor and both QR texts are written under ``<var>/demo/``, and
:func:`print_outcome` prints the ``safecity eservices verify --offline`` commands that
reproduce the verdicts (within the QR's five-minute life).

Reruns are safe: each application is found again by its idempotency key and only the
missing steps run; the first certificate gets a fresh QR each run. A revoked certificate
can no longer be shown, so on a rerun the QR kept from the first run is checked against
today's bundle at the moment it was shown.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.eservices import registry, service, verification
from safecity.eservices.citizens import DEMO_USERNAME
from safecity.eservices.credentials import Verdict
from safecity.eservices.models import Application
from safecity.orgs.models import Org
from safecity.platform.db import transaction, utcnow
from safecity.platform.errors import Conflict, NotFound
from safecity.platform.runtime import Runtime
from safecity.security.auth import principal_for
from safecity.security.models import User
from safecity.security.rbac import Principal

ITEM = "no-criminal-record"
PROFILE = "hotel"
KEY_SHOWN = "demo:no-criminal-record:shown"
KEY_REVOKED = "demo:no-criminal-record:revoked"
REVOKE_REASON = "演示：证明已撤销 / demo: the certificate was withdrawn by the issuer"
# the pages the registry cannot prefill (the applicant page is prefilled from the record)
ANSWERS: dict[str, dict[str, Any]] = {
    "where": {"apply_at": "household"},
    "purpose": {"purpose": "employment"},
    "declaration": {"declaration": True},
}
# the staff action that follows each state, up to the issued certificate
NEXT_ACTION = {
    "submitted": "accept",
    "accepted": "review",
    "review": "approve",
    "approved": "issue",
}

QR_LIFE = timedelta(minutes=5)  # an SC1: QR's life (replay defence)

BUNDLE_FILE = "eservices-bundle.jwt"
ANCHOR_FILE = BUNDLE_FILE + ".anchor.json"
SHOWN_QR_FILE = "eservices-qr-valid.txt"
REVOKED_QR_FILE = "eservices-qr-revoked.txt"
STATE_FILE = "eservices-demo.json"


@dataclass(frozen=True)
class DemoCertificate:
    """One application of the scenario and the offline verdict on its QR."""

    reference: str
    application_id: str
    certificate_id: str
    certificate_number: str
    state: str
    verdict: str
    reason: str
    """The verdict's reason (a bundle carries status bits, not the issuer's reason)."""
    registry_reason: str | None
    """The reason the registry recorded for a revocation."""
    verdict_before: str | None
    """The offline verdict before the revocation (this run revoked it), else None."""
    qr_path: Path
    shown_at: datetime


@dataclass(frozen=True)
class DemoOutcome:
    """What the scenario left: the two certificates, the bundle and the anchor files."""

    shown: DemoCertificate
    revoked: DemoCertificate
    bundle_path: Path
    anchor_path: Path

    def verify_command(self, qr_path: Path) -> str:
        """The offline check a person can run themselves (no database, no network)."""
        return shlex.join(
            [
                "safecity",
                "eservices",
                "verify",
                "--offline",
                "--bundle",
                str(self.bundle_path),
                "--anchor",
                str(self.anchor_path),
                str(qr_path),
            ]
        )


def _citizen(session: Session) -> Principal:
    user = session.scalars(select(User).where(User.username == DEMO_USERNAME)).one_or_none()
    if user is None:
        raise NotFound(f"the demo user {DEMO_USERNAME!r} does not exist; seed the demo users")
    return principal_for(session=session, user=user, auth_method="session")


def _staff(org: Org, role: str) -> Principal:
    """A case worker (or supervisor) of the handling department, as the simulation builds one."""
    return Principal(
        id=f"demo-{role}-{org.code}",
        kind="user",
        username=f"demo-{role}-{org.code}",
        roles=frozenset({role}),
        org_id=org.id,
        visible_org_ids=frozenset({org.id}),
        auth_method="session",
    )


def _apply(runtime: Runtime, citizen: Principal, key: str) -> str:
    """Start, fill and submit one application (one transaction: no half-made drafts);
    an application already submitted under ``key`` is returned as it is."""
    with transaction(runtime.sessions) as s:
        earlier = s.scalars(
            select(Application.id).where(Application.idempotency_key == key)
        ).one_or_none()
        if earlier is not None:
            return earlier
        app = service.start_application(session=s, principal=citizen, item_code=ITEM)
        for page, answers in ANSWERS.items():
            service.save_page(
                session=s, principal=citizen, application_id=app.id, page_id=page, answers=answers
            )
        service.submit(session=s, principal=citizen, application_id=app.id, idempotency_key=key)
        return app.id


def _handle(runtime: Runtime, clerk: Principal, citizen: Principal, application_id: str) -> str:
    """Accept, review, approve and issue (each step its own transaction, as in the
    console; steps already taken are skipped); returns the certificate id."""
    while True:
        with transaction(runtime.sessions) as s:
            app = service.get_application(
                session=s, principal=citizen, application_id=application_id
            )
            action = NEXT_ACTION.get(app.state)
            if action is None:
                if app.state != "issued" or app.certificate_id is None:
                    raise Conflict(f"demo application {app.reference} is {app.state}")
                return app.certificate_id
            service.act(session=s, principal=clerk, application_id=application_id, action=action)


def _bundle(runtime: Runtime) -> tuple[str, dict[str, Any]]:
    """A fresh signed trust bundle and the anchor an offline verifier pins."""
    with transaction(runtime.sessions) as s:
        bundle = registry.trust_bundle(s)
        anchor = registry.trust_anchor_jwks(registry.key_dir_of(s))
    return bundle, anchor


def _check_offline(
    qr: str, bundle: str, anchor: dict[str, Any], at: datetime | None = None
) -> Verdict:
    """The verifier's step: the QR, the bundle and the anchor only (no database)."""
    anchors = verification.read_anchors(anchor)
    return verification.verify_offline(qr, bundle=bundle, anchors=anchors, profile=PROFILE, now=at)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def simulate_no_criminal_record(runtime: Runtime) -> DemoOutcome:
    """Run the scenario (idempotent); returns the references, verdicts and file paths."""
    out = runtime.settings.var_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = _read_state(state_path)
    with transaction(runtime.sessions) as s:
        citizen = _citizen(s)
        org = service.department_org(s, service.catalogue().get(ITEM).departments[0])
        clerk, supervisor = _staff(org, "department_staff"), _staff(org, "supervisor")

    # 1. applied, approved, issued, shown as a QR (fresh every run)
    shown_cert = _handle(runtime, clerk, citizen, _apply(runtime, citizen, KEY_SHOWN))
    shown_at = utcnow()
    with transaction(runtime.sessions) as s:
        shown_qr = registry.certificate_qr(
            session=s, principal=citizen, certificate_id=shown_cert, profile=PROFILE, now=shown_at
        )

    # 2. a second one, shown while active (once: revoking is final)
    revoked_cert = _handle(runtime, clerk, citizen, _apply(runtime, citizen, KEY_REVOKED))
    with transaction(runtime.sessions) as s:
        current = registry.get_certificate(
            session=s, principal=citizen, certificate_id=revoked_cert, purpose="demo"
        )
    revoked_qr_path = out / REVOKED_QR_FILE
    revoked_qr: str | None = None
    revoked_at, check_at = shown_at, None
    to_revoke = current.status == "active"
    if to_revoke:
        with transaction(runtime.sessions) as s:
            revoked_qr = registry.certificate_qr(
                session=s,
                principal=citizen,
                certificate_id=revoked_cert,
                profile=PROFILE,
                now=shown_at,
            )
        revoked_qr_path.write_text(revoked_qr + "\n", encoding="ascii")
        state["revoked_qr_shown_at"] = shown_at.isoformat()
        state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    elif revoked_qr_path.is_file() and "revoked_qr_shown_at" in state:
        revoked_qr = revoked_qr_path.read_text(encoding="ascii").strip()
        revoked_at = datetime.fromisoformat(state["revoked_qr_shown_at"]).astimezone(UTC)
        check_at = revoked_at  # a rerun: the kept QR, checked as of when it was shown

    # 3. an offline verifier (bundle + anchor only, no database): both VALID
    bundle, anchor = _bundle(runtime)
    valid = _check_offline(shown_qr, bundle, anchor)
    before: str | None = None
    if to_revoke and revoked_qr is not None:
        before = str(_check_offline(revoked_qr, bundle, anchor).status)

    # 4. a supervisor revokes the second; a fresh bundle turns its verdict to REVOKED
    if to_revoke:
        with transaction(runtime.sessions) as s:
            registry.revoke(
                session=s, principal=supervisor, certificate_id=revoked_cert, reason=REVOKE_REASON
            )
        bundle, anchor = _bundle(runtime)
        valid = _check_offline(shown_qr, bundle, anchor)  # the first one is untouched
    if revoked_qr is not None:
        gone = _check_offline(revoked_qr, bundle, anchor, at=check_at)
        gone_verdict, gone_reason = str(gone.status), gone.reason
    else:
        gone_verdict, gone_reason = "-", "the QR shown before the revocation was not kept"

    bundle_path, anchor_path = out / BUNDLE_FILE, out / ANCHOR_FILE
    bundle_path.write_text(bundle + "\n", encoding="ascii")
    anchor_path.write_text(json.dumps(anchor, indent=2) + "\n", encoding="utf-8")
    (out / SHOWN_QR_FILE).write_text(shown_qr + "\n", encoding="ascii")

    with transaction(runtime.sessions) as s:
        first = registry.get_certificate(
            session=s, principal=citizen, certificate_id=shown_cert, purpose="demo"
        )
        second = registry.get_certificate(
            session=s, principal=citizen, certificate_id=revoked_cert, purpose="demo"
        )
        refs = {
            c.id: service.get_application(
                session=s, principal=citizen, application_id=c.application_id
            ).reference
            for c in (first, second)
        }
    return DemoOutcome(
        shown=DemoCertificate(
            reference=refs[shown_cert],
            application_id=first.application_id,
            certificate_id=shown_cert,
            certificate_number=first.number,
            state=first.status,
            verdict=str(valid.status),
            reason=valid.reason,
            registry_reason=first.reason,
            verdict_before=None,
            qr_path=out / SHOWN_QR_FILE,
            shown_at=shown_at,
        ),
        revoked=DemoCertificate(
            reference=refs[revoked_cert],
            application_id=second.application_id,
            certificate_id=revoked_cert,
            certificate_number=second.number,
            state=second.status,
            verdict=gone_verdict,
            reason=gone_reason,
            registry_reason=second.reason,
            verdict_before=before,
            qr_path=revoked_qr_path,
            shown_at=revoked_at,
        ),
        bundle_path=bundle_path,
        anchor_path=anchor_path,
    )


def print_outcome(outcome: DemoOutcome, console: Console) -> None:
    """The scenario's result and the command to check the QR offline yourself."""
    table = Table(title="E-services demo: no-criminal-record certificates (verified offline)")
    for column in ("application = certificate no.", "state", "offline verdict", "reason"):
        table.add_column(column, no_wrap=column != "reason")
    for case in (outcome.shown, outcome.revoked):
        reason = case.reason + (f" ({case.registry_reason})" if case.registry_reason else "")
        verdict = f"{case.verdict_before} → {case.verdict}" if case.verdict_before else case.verdict
        table.add_row(case.certificate_number, case.state, verdict, reason)
    console.print(table)
    page = f"/services/applications/{outcome.shown.application_id}"
    console.print(
        "Check the citizen's QR offline (a QR lives 5 minutes; log in as [bold]citizen[/bold]"
        f" and open {page} for a fresh one):",
        soft_wrap=True,
    )
    console.print(f"  {outcome.verify_command(outcome.shown.qr_path)}", soft_wrap=True)
    if not outcome.revoked.qr_path.is_file():
        return
    if utcnow() - outcome.revoked.shown_at < QR_LIFE:
        console.print(f"  {outcome.verify_command(outcome.revoked.qr_path)}", soft_wrap=True)
    else:
        console.print(
            "  (the revoked certificate's QR was shown on the first run and has expired since:"
            " the command now says EXPIRED, and no fresh QR is made for a revoked certificate)"
        )
