"""The fraud feeds: what operators, banks, the citizen app and the cases domain send, and
the pseudonymised events they become on the bus.

Six feeds, each a documented record (the Pydantic models below are the schema; ``safecity
fraud feeds`` prints their JSON schemas):

========== ============================================ ===================== =========
feed       sender                                       bus event type(s)     retention
========== ============================================ ===================== =========
call       telecom operators (start, then end)          fraud.call.started /  180 days
                                                        fraud.call.ended
sms        operators (text only for consenting users)   fraud.sms.sent        180 days
web        operators / citizen app: URL visit, app      fraud.web.flagged     180 days
           install flagged as risky
transfer   banks and payment apps: a transfer attempt   fraud.transfer.       365 days
                                                        attempted
report     citizens (numbers, URLs, accounts)           fraud.report.filed    730 days
confirmed  cases domain: identifiers a case confirmed   fraud.identifier.     1825 days
                                                        confirmed
========== ============================================ ===================== =========

Intake (:func:`to_event`) normalises every identifier (E.164 phones, upper-case accounts,
IDNA domains) and replaces it with its keyed pseudonym, so nothing on the bus or in the
engine names a person. Callers, SMS senders and linked domains — the suspect side — also
travel sealed (AES-GCM, key outside the database), so that a block proposal the engine
makes can name the number or site to its reviewer; callees and payers never do. SMS
text never leaves intake: a consenting user's text is scored there and only the score
and its reason codes travel on. Every event carries its purpose
(``fraud_prevention``) and retention period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from safecity.fraud.identifiers import Pseudonymiser, normalise_domain, seal
from safecity.fraud.phones import normalise_phone
from safecity.platform.errors import InvalidInput
from safecity.platform.events import register_event_type

PURPOSE = "fraud_prevention"
SOURCE = "fraud.intake"

CallerIdType = Literal["normal", "international", "virtual", "hidden", "spoofed_suspect"]
Short = Annotated[str, Field(min_length=1, max_length=64)]
Ident = Annotated[str, Field(min_length=1, max_length=200)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: Annotated[str, Field(min_length=1, max_length=64, description="sender's record id")]


class CallRecord(_Record):
    """A call, sent when it starts (``ended_at`` empty) and again when it ends."""

    caller: Ident
    callee: Ident
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    caller_id_type: CallerIdType = "normal"
    caller_sim_activated_on: date | None = None
    cell_lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    cell_lng: Annotated[float, Field(ge=-180, le=180)] | None = None
    callee_age_band: Literal["under_25", "25_59", "60_plus"] | None = None


class SmsRecord(_Record):
    sender: Ident
    recipient: Ident
    sent_at: AwareDatetime
    urls: Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=10)] = []
    consent: bool = False
    text: Annotated[str, Field(max_length=2000)] | None = None


class WebRecord(_Record):
    subject: Ident = Field(description="the phone number of the person who visited/installed")
    url: Annotated[str, Field(min_length=1, max_length=2000)]
    kind: Literal["visit", "app_install"]
    flagged_by: Literal["operator", "citizen_app"]
    seen_at: AwareDatetime


class TransferRecord(_Record):
    payer_account: Ident
    payer_phone: Ident
    payee_account: Ident
    amount: Annotated[Decimal, Field(gt=0, le=Decimal("100000000"), decimal_places=2)]
    currency: Literal["CNY"] = "CNY"
    channel: Literal["mobile_app", "online_banking", "atm", "counter", "third_party"]
    new_payee: bool
    attempted_at: AwareDatetime


class ReportedIdentifier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["phone", "account", "domain"]
    value: Ident


class CitizenReport(_Record):
    identifiers: Annotated[list[ReportedIdentifier], Field(min_length=1, max_length=20)]
    reported_at: AwareDatetime


class ConfirmedIdentifier(_Record):
    kind: Literal["phone", "account", "domain"]
    value: Ident
    case_id: Short
    confirmed_at: AwareDatetime


@dataclass(frozen=True)
class Feed:
    name: str
    model: type[_Record]
    retention_days: int
    description: str


FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        Feed("call", CallRecord, 180, "call records from operators: start, then end"),
        Feed("sms", SmsRecord, 180, "SMS events; text only with the recipient's consent"),
        Feed("web", WebRecord, 180, "URL visits and app installs flagged as risky"),
        Feed("transfer", TransferRecord, 365, "transfer attempts from banks and payment apps"),
        Feed("report", CitizenReport, 730, "numbers, URLs and accounts citizens reported"),
        Feed("confirmed", ConfirmedIdentifier, 1825, "scam identifiers a case confirmed"),
    )
}

# ---------------------------------------------------------------- bus events

CALL_STARTED = "fraud.call.started"
CALL_ENDED = "fraud.call.ended"
SMS_SENT = "fraud.sms.sent"
WEB_FLAGGED = "fraud.web.flagged"
TRANSFER_ATTEMPTED = "fraud.transfer.attempted"
REPORT_FILED = "fraud.report.filed"
IDENTIFIER_CONFIRMED = "fraud.identifier.confirmed"
EVENT_TYPES = (
    CALL_STARTED,
    CALL_ENDED,
    SMS_SENT,
    WEB_FLAGGED,
    TRANSFER_ATTEMPTED,
    REPORT_FILED,
    IDENTIFIER_CONFIRMED,
)

_PSEUDO = {"type": "string", "pattern": "^[pad]_[0-9a-f]{32}$"}
_TIME = {"type": "string", "format": "date-time"}
_COMMON = {
    "record_id": {"type": "string", "minLength": 1, "maxLength": 64},
    "time": _TIME,
    "purpose": {"const": PURPOSE},
    "retention_days": {"type": "integer", "minimum": 1},
}
_REQ = ["record_id", "time", "purpose", "retention_days"]


def _schema(required: list[str], **props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [*_REQ, *required],
        "properties": {**_COMMON, **props},
    }


_CELL = {"type": ["number", "null"]}
_SEALED = {"type": "string", "maxLength": 200}
CALL_SCHEMA = _schema(
    ["caller", "callee", "started_at", "caller_kind", "caller_id_type"],
    caller=_PSEUDO,
    caller_sealed=_SEALED,
    callee=_PSEUDO,
    started_at=_TIME,
    duration_s={"type": ["number", "null"], "minimum": 0},
    caller_kind={"type": "string"},
    caller_id_type={"type": "string"},
    caller_sim_age_days={"type": ["integer", "null"]},
    cell_lat=_CELL,
    cell_lng=_CELL,
    callee_age_band={"type": ["string", "null"]},
)
SMS_SCHEMA = _schema(
    ["sender", "recipient", "domains", "text_score", "text_reasons"],
    sender=_PSEUDO,
    sender_sealed=_SEALED,
    domains_sealed={"type": "array", "items": _SEALED, "maxItems": 10},
    recipient=_PSEUDO,
    domains={"type": "array", "items": _PSEUDO, "maxItems": 10},
    text_score={"type": ["number", "null"], "minimum": 0, "maximum": 1},
    text_reasons={"type": "array", "items": {"type": "string"}},
)
WEB_SCHEMA = _schema(
    ["subject", "domain", "kind", "flagged_by"],
    subject=_PSEUDO,
    domain=_PSEUDO,
    kind={"enum": ["visit", "app_install"]},
    flagged_by={"enum": ["operator", "citizen_app"]},
)
TRANSFER_SCHEMA = _schema(
    ["payer", "payer_person", "payee", "amount_cents", "channel", "new_payee"],
    payer=_PSEUDO,
    payer_person=_PSEUDO,
    payee=_PSEUDO,
    amount_cents={"type": "integer", "minimum": 1},
    channel={"type": "string"},
    new_payee={"type": "boolean"},
)
REPORT_SCHEMA = _schema(["identifiers"], identifiers={"type": "array", "items": _PSEUDO})
CONFIRMED_SCHEMA = _schema(
    ["identifier", "case_id"], identifier=_PSEUDO, case_id={"type": "string", "maxLength": 64}
)

for _name, _schema_, _text in (
    (CALL_STARTED, CALL_SCHEMA, "A call began (pseudonymous caller and callee)."),
    (CALL_ENDED, CALL_SCHEMA, "A call ended, with its duration."),
    (SMS_SENT, SMS_SCHEMA, "An SMS; its text scored at intake, never carried."),
    (WEB_FLAGGED, WEB_SCHEMA, "A risky URL visit or app install."),
    (TRANSFER_ATTEMPTED, TRANSFER_SCHEMA, "A bank transfer was attempted."),
    (REPORT_FILED, REPORT_SCHEMA, "A citizen reported scam identifiers."),
    (IDENTIFIER_CONFIRMED, CONFIRMED_SCHEMA, "A case confirmed a scam identifier."),
):
    register_event_type(_name, _schema_, description=_text)

# ---------------------------------------------------------------- intake

TextScorer = Callable[[str], tuple[float, list[str]]]


def parse_record(feed: str, data: dict[str, Any]) -> _Record:
    """The feed record in ``data``, or :class:`InvalidInput` naming the first problem."""
    spec = FEEDS.get(feed)
    if spec is None:
        raise InvalidInput(f"unknown fraud feed {feed!r}; feeds: {', '.join(FEEDS)}")
    try:
        return spec.model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(record)"
        raise InvalidInput(f"{feed} record invalid at {where}: {first['msg']}") from None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _common(feed: str, record: _Record, time: datetime) -> dict[str, Any]:
    return {
        "record_id": record.id,
        "time": _iso(time),
        "purpose": PURPOSE,
        "retention_days": FEEDS[feed].retention_days,
    }


def to_event(
    feed: str,
    record: _Record,
    pseudonyms: Pseudonymiser,
    *,
    text_scorer: TextScorer | None = None,
) -> tuple[str, dict[str, Any]]:
    """The bus event (type, payload) for one validated feed record; identifiers become
    pseudonyms, SMS text becomes a score. :class:`InvalidInput` for a bad identifier."""
    if isinstance(record, CallRecord):
        return _call_event(record, pseudonyms)
    if isinstance(record, SmsRecord):
        score: float | None = None
        reasons: list[str] = []
        if record.text and record.consent and text_scorer is not None:
            score, reasons = text_scorer(record.text)
        sender = normalise_phone(record.sender).e164
        domains = [normalise_domain(u) for u in record.urls]
        return SMS_SENT, {
            **_common(feed, record, record.sent_at),
            "sender": pseudonyms.of_normalised("phone", sender),
            "sender_sealed": seal(pseudonyms, "phone", sender),
            "recipient": pseudonyms.of("phone", record.recipient),
            "domains": [pseudonyms.of_normalised("domain", d) for d in domains],
            "domains_sealed": [seal(pseudonyms, "domain", d) for d in domains],
            "text_score": score,
            "text_reasons": reasons,
        }
    if isinstance(record, WebRecord):
        return WEB_FLAGGED, {
            **_common(feed, record, record.seen_at),
            "subject": pseudonyms.of("phone", record.subject),
            "domain": pseudonyms.of("domain", record.url),
            "kind": record.kind,
            "flagged_by": record.flagged_by,
        }
    if isinstance(record, TransferRecord):
        return TRANSFER_ATTEMPTED, {
            **_common(feed, record, record.attempted_at),
            "payer": pseudonyms.of("account", record.payer_account),
            "payer_person": pseudonyms.of("phone", record.payer_phone),
            "payee": pseudonyms.of("account", record.payee_account),
            "amount_cents": int(record.amount * 100),
            "channel": record.channel,
            "new_payee": record.new_payee,
        }
    if isinstance(record, CitizenReport):
        return REPORT_FILED, {
            **_common(feed, record, record.reported_at),
            "identifiers": sorted({pseudonyms.of(i.kind, i.value) for i in record.identifiers}),
        }
    if isinstance(record, ConfirmedIdentifier):
        return IDENTIFIER_CONFIRMED, {
            **_common(feed, record, record.confirmed_at),
            "identifier": pseudonyms.of(record.kind, record.value),
            "case_id": record.case_id,
        }
    raise InvalidInput(f"no event for a {type(record).__name__}")


def _call_event(record: CallRecord, pseudonyms: Pseudonymiser) -> tuple[str, dict[str, Any]]:
    caller = normalise_phone(record.caller)
    duration: float | None = None
    if record.ended_at is not None:
        duration = (record.ended_at - record.started_at).total_seconds()
        if duration < 0:
            raise InvalidInput("call record invalid: ended_at is before started_at")
    sim_age: int | None = None
    if record.caller_sim_activated_on is not None:
        sim_age = max(0, (record.started_at.date() - record.caller_sim_activated_on).days)
    event_time = record.ended_at or record.started_at
    payload = {
        **_common("call", record, event_time),
        "caller": pseudonyms.of_normalised("phone", caller.e164),
        "caller_sealed": seal(pseudonyms, "phone", caller.e164),
        "callee": pseudonyms.of("phone", record.callee),
        "started_at": _iso(record.started_at),
        "duration_s": duration,
        "caller_kind": caller.kind,
        "caller_id_type": record.caller_id_type,
        "caller_sim_age_days": sim_age,
        "cell_lat": record.cell_lat,
        "cell_lng": record.cell_lng,
        "callee_age_band": record.callee_age_band,
    }
    return (CALL_ENDED if duration is not None else CALL_STARTED), payload
