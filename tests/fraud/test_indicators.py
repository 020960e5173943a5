"""The indicator store: evidence required, review, expiry, exports, appeals, audit."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from joserfc.jwk import OKPKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from safecity.fraud import indicators
from safecity.fraud.models import Appeal, Indicator
from safecity.platform.db import utcnow
from safecity.platform.errors import Conflict, IllegalTransition, InvalidInput, PermissionDenied
from safecity.platform.runtime import Runtime
from safecity.security import audit
from safecity.security.audit import AuditEntry
from safecity.security.rbac import Principal
from tests.conftest import City

pytestmark = pytest.mark.db


def person(city: City, role: str) -> Principal:
    return Principal(
        id=f"{role}-1",
        kind="user",
        username=role,
        roles=frozenset({role}),
        org_id=city.city.id,
        visible_org_ids=None,
    )


def reviewer(city: City) -> Principal:
    return person(city, "supervisor")


def add(s: Session, city: City, **entry: Any) -> Indicator:
    """A block-list entry added by the city's supervisor."""
    return indicators.add(session=s, principal=reviewer(city), **entry)


def test_an_entry_without_evidence_is_refused(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        for evidence in ("", "   "):
            with pytest.raises(InvalidInput, match="needs evidence"):
                add(
                    s,
                    city,
                    kind="phone",
                    value="17012345678",
                    source="manual",
                    evidence=evidence,
                )
        with pytest.raises(InvalidInput, match="not a phone number"):
            add(
                s,
                city,
                kind="phone",
                value="call me",
                source="manual",
                evidence="report R-1",
            )
        with pytest.raises(InvalidInput, match="expires_at"):
            add(
                s,
                city,
                kind="phone",
                value="17012345678",
                source="manual",
                evidence="report R-1",
                expires_at=utcnow() - timedelta(days=1),
            )


def test_proposal_review_and_the_same_number_written_twice(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        entry = add(
            s,
            city,
            kind="phone",
            value="+86 170 1234 5678",
            source="model",
            evidence="engine score 0.93, reasons NEW_SIM REPORTED_MANY",
            confidence=0.93,
        )
        assert entry.state == "proposed"
        assert entry.value == "+8617012345678"
        with pytest.raises(Conflict, match="already on the list"):
            add(
                s,
                city,
                kind="phone",
                value="17012345678",
                source="report",
                evidence="report R-2",
            )
        assert indicators.active_pseudonyms(session=s) == []
        indicators.transition(
            session=s, principal=reviewer(city), indicator_id=entry.id, name="approve"
        )
        assert indicators.active_pseudonyms(session=s) == [(entry.pseudonym, 0.93)]
        with pytest.raises(IllegalTransition):
            indicators.transition(
                session=s, principal=reviewer(city), indicator_id=entry.id, name="approve"
            )
        officer = person(city, "officer")
        with pytest.raises(PermissionDenied):
            indicators.transition(
                session=s, principal=officer, indicator_id=entry.id, name="remove", notes="x"
            )


def test_entries_expire_and_exports_carry_only_active_ones(runtime: Runtime, city: City) -> None:
    with runtime.sessions.begin() as s:
        soon = add(
            s,
            city,
            kind="domain",
            value="https://safe-acct.example.top/x",
            source="case",
            evidence="case C-1",
            active=True,
            expires_at=utcnow() + timedelta(minutes=1),
        )
        add(
            s,
            city,
            kind="account",
            value="6222 0200 9999 8888",
            source="case",
            evidence="case C-1",
            active=True,
        )
        add(
            s,
            city,
            kind="phone",
            value="17012345678",
            source="model",
            evidence="engine",
            confidence=0.9,
        )  # proposed: not exported
        assert indicators.expire_due(session=s, now=utcnow() + timedelta(minutes=2)) == 1
        assert soon.state == "expired"
        text = indicators.export_csv(session=s, principal=reviewer(city))
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [(r["kind"], r["value"]) for r in rows] == [("account", "6222020099998888")]
        token = indicators.export_signed(session=s, principal=reviewer(city))
        public = OKPKey.import_key(indicators.feed_key(s).as_dict(private=False))
        body = indicators.verify_feed(token, public)
        assert [e["value"] for e in body["entries"]] == ["6222020099998888"]
        head, payload, sig = token.split(".")
        with pytest.raises(InvalidInput, match="does not verify"):
            indicators.verify_feed(f"{head}.{payload}.{sig[:-4]}AAAA", public)
    with runtime.sessions() as s:  # audit records are written at commit
        exports = s.scalars(
            select(AuditEntry).where(AuditEntry.action == "fraud.indicator.export")
        ).all()
        assert {e.detail["format"] for e in exports} == {"csv", "jws"}


def test_an_upheld_appeal_removes_the_entry_and_unknown_ones_reveal_nothing(
    runtime: Runtime, city: City
) -> None:
    with runtime.sessions.begin() as s:
        entry = add(
            s,
            city,
            kind="phone",
            value="13800138000",
            source="report",
            evidence="reports R-1 R-2 R-3",
            active=True,
        )
        filed = indicators.appeal(
            session=s,
            kind="phone",
            value="138 0013 8000",
            contact="owner@example.com",
            reason="This is my number since 2015; I never called anyone about a refund.",
        )
        stray = indicators.appeal(
            session=s, kind="phone", value="13900139000", contact="x@example.com", reason="?"
        )
        assert filed.state == "open"
        assert stray.state == "dropped"
        assert s.scalars(select(Appeal)).all() == [filed]  # the stray one is not stored
        with pytest.raises(InvalidInput, match="requires notes"):
            indicators.decide_appeal(
                session=s, principal=reviewer(city), appeal_id=filed.id, uphold=True, notes=" "
            )
        indicators.decide_appeal(
            session=s,
            principal=reviewer(city),
            appeal_id=filed.id,
            uphold=True,
            notes="number re-assigned by the operator in 2015",
        )
        assert entry.state == "removed"
        assert indicators.active_pseudonyms(session=s) == []
        with pytest.raises(Conflict):
            indicators.decide_appeal(
                session=s, principal=reviewer(city), appeal_id=filed.id, uphold=False, notes="x"
            )
    with runtime.sessions() as s:
        filed_by = s.scalars(
            select(AuditEntry.actor_id).where(AuditEntry.action == "fraud.appeal.file")
        ).all()
        assert filed_by == [audit.SYSTEM.id]  # filed by the public: recorded as the system


def test_listing_the_same_identifier_at_the_same_moment_is_a_conflict_not_a_crash(
    runtime: Runtime, city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    with runtime.sessions.begin() as s:
        first = add(
            s,
            city,
            kind="domain",
            value="op7-0.example.top",
            source="case",
            evidence="case C-1",
            active=True,
        )
    # the other transaction looked before this one committed: it saw nothing
    real = indicators._existing
    calls: list[int] = []

    def looked_too_early(*args: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else real(*args)

    monkeypatch.setattr(indicators, "_existing", looked_too_early)
    with runtime.sessions.begin() as s:
        with pytest.raises(Conflict, match="at the same moment") as raised:
            add(
                s,
                city,
                kind="domain",
                value="op7-0.example.top",
                source="model",
                evidence="engine",
                confidence=0.9,
            )
        assert raised.value.extra["indicator_id"] == first.id
        # the transaction is still usable after the refused insert
        assert indicators.active_pseudonyms(session=s) == [(first.pseudonym, 1.0)]
