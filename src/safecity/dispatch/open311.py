"""Open311 GeoReport v2 under ``/open311/v2/`` (JSON and XML), over the work orders.

* ``GET discovery.{fmt}``, ``GET services.{fmt}``, ``GET services/{code}.{fmt}``
  (definitions have no attributes), ``GET requests.{fmt}`` (filters
  ``service_request_id``, ``service_code``, ``start_date``, ``end_date``, ``status``),
  ``GET requests/{id}.{fmt}``: public, **redacted** (no email, name or phone; the
  address at building level; description with flat, phone and ID numbers removed; the
  point rounded to about ten metres).
* ``POST requests.{fmt}`` (``application/x-www-form-urlencoded``, as the specification
  says): ``api_key`` (a bearer token of an ``open311_client`` principal; missing or
  invalid → 403), ``service_code``, ``lat``/``long`` or ``address_string`` or
  ``address_id``, ``description``, ``email``, ``first_name``, ``last_name``, ``phone``,
  ``media_url``, ``attribute[code]``. The answer is ``service_request_id``.

Errors use the specification's format: ``[{"code": 400, "description": "..."}]`` or
``<errors><error><code>400</code><description>...</description></error></errors>``
(errors raised outside these handlers get the same through
:func:`safecity.platform.problems.problem_response`). Services are the codes the city's
departments declare (or its routing table names), named from
:mod:`safecity.dispatch.services`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from safecity.dispatch import routing
from safecity.dispatch import service as dispatch
from safecity.dispatch.models import WorkOrder, WorkOrderReply
from safecity.dispatch.privacy import building_level, public_text, round_coordinate
from safecity.dispatch.schemas import MAX_DESCRIPTION
from safecity.dispatch.services import info
from safecity.dispatch.workflow import CLOSED_STATES, OPEN_STATES, SUBMIT
from safecity.orgs.models import Org
from safecity.platform.errors import SafeCityError, Unauthenticated
from safecity.platform.runtime import DbSession
from safecity.security.auth import authenticate_token
from safecity.security.rbac import public

PREFIX = "/open311/v2"
SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-26T00:00:00+00:00"
FORMATS = ("json", "xml")
MAX_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_IDS = 100
MAX_ATTRIBUTES = 50
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_.:-]{1,64})\]$")
SOURCE = "open311"

router = APIRouter(prefix=PREFIX, tags=["open311"], dependencies=[Depends(public)])

Format = Annotated[str, "json or xml"]


class Open311Error(Exception):
    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


# --------------------------------------------------------------------------- rendering


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return w3c(value)
    return str(value)


def _xml_element(parent: ET.Element, name: str, value: Any) -> None:
    child = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for key, inner in value.items():
            _xml_element(child, key, inner)
    elif isinstance(value, list):
        singular = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute"}
        for item in value:
            _xml_element(child, singular.get(name, "item"), item)
    else:
        child.text = _text(value)


def to_xml(root: str, item: str | None, data: Any) -> bytes:
    """``<root><item>…</item>…</root>`` for a list, ``<root>…</root>`` for a dict."""
    top = ET.Element(root)
    if isinstance(data, list):
        assert item is not None
        for entry in data:
            _xml_element(top, item, entry)
    else:
        for key, value in data.items():
            _xml_element(top, key, value)
    out: bytes = ET.tostring(top, encoding="utf-8", xml_declaration=True)
    return out


def respond(fmt: str, data: Any, *, root: str, item: str | None, status: int = 200) -> Response:
    if fmt == "xml":
        return Response(
            to_xml(root, item, data), status_code=status, media_type="text/xml; charset=utf-8"
        )
    return JSONResponse(data, status_code=status)


def error_response(fmt: str, code: int, description: str) -> Response:
    errors = [{"code": code, "description": description}]
    if fmt == "xml":
        return Response(
            to_xml("errors", "error", errors),
            status_code=code,
            media_type="text/xml; charset=utf-8",
        )
    return JSONResponse(errors, status_code=code)


def _handled(fmt: str, body: Callable[[], Response]) -> Response:
    """Run ``body``; Open311 and SafeCity errors become the specification's error list."""
    shown = fmt if fmt in FORMATS else "json"
    try:
        if fmt not in FORMATS:
            raise Open311Error(400, f"format {fmt[:16]!r} is not supported; use json or xml")
        return body()
    except Open311Error as exc:
        return error_response(shown, exc.code, exc.description)
    except SafeCityError as exc:
        code = 400 if exc.status == 422 else exc.status
        return error_response(shown, code, exc.detail)


def w3c(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _lang(request: Request) -> str:
    wanted = request.query_params.get("locale") or request.headers.get("accept-language", "")
    return "zh" if wanted.lower().startswith("zh") else "en"


# --------------------------------------------------------------------------- services


def service_entry(code: str, lang: str) -> dict[str, Any]:
    entry = info(code)
    return {
        "service_code": code,
        "service_name": entry.name(lang),
        "description": entry.name("zh" if lang == "en" else "en"),
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(entry.keywords),
        "group": entry.group,
    }


def _offered(session: Session, code: str) -> str:
    if code not in routing.offered_codes(session):
        raise Open311Error(404, f"service_code {code[:64]!r} is not a service of this city")
    return code


def request_entry(
    order: WorkOrder, *, lang: str, agencies: dict[str, str], notes: dict[str, str]
) -> dict[str, Any]:
    """One service request as the public sees it (no requester data, building level)."""
    status = "closed" if order.state in CLOSED_STATES else "open"
    return {
        "service_request_id": order.service_request_id,
        "status": status,
        "status_notes": public_text(notes.get(order.id)),
        "service_name": info(order.service_code).name(lang),
        "service_code": order.service_code,
        "description": public_text(order.description),
        "agency_responsible": agencies.get(order.department_id, ""),
        "service_notice": "",
        "requested_datetime": w3c(order.created_at),
        "updated_datetime": w3c(order.updated_at),
        "expected_datetime": w3c(order.expected_datetime) if order.expected_datetime else "",
        "address": building_level(order.address),
        "address_id": "",
        "zipcode": "",
        "lat": round_coordinate(order.lat),
        "long": round_coordinate(order.lng),
        "media_url": order.media_url or "",
    }


def _entries(session: Session, orders: Sequence[WorkOrder], lang: str) -> list[dict[str, Any]]:
    dept_ids = sorted({o.department_id for o in orders})
    agencies: dict[str, str] = {}
    if dept_ids:
        for org in session.scalars(select(Org).where(Org.id.in_(dept_ids))):
            agencies[org.id] = org.name_zh if lang == "zh" else org.name_en
    notes: dict[str, str] = {}
    ids = [o.id for o in orders]
    if ids:
        rows = session.scalars(
            select(WorkOrderReply)
            .where(WorkOrderReply.work_order_id.in_(ids), WorkOrderReply.public.is_(True))
            .order_by(WorkOrderReply.created_at, WorkOrderReply.id)
        )
        for reply in rows:
            notes[reply.work_order_id] = reply.body  # the latest public reply wins
    return [request_entry(o, lang=lang, agencies=agencies, notes=notes) for o in orders]


# --------------------------------------------------------------------------- parsing


def _parse_date(name: str, raw: str | None) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Open311Error(
            400, f"{name} must be a W3C date-time, e.g. 2026-01-01T00:00:00Z"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _csv(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None
    if not math.isfinite(value):
        raise Open311Error(400, f"{name} must be a finite number")
    return value


def _one(form: dict[str, str], name: str, limit: int) -> str | None:
    value = form.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise Open311Error(400, f"{name} is longer than {limit} characters")
    return value.strip()


# --------------------------------------------------------------------------- routes


@router.get("/discovery.{fmt}", summary="Open311 discovery")
def discovery(request: Request, fmt: Format) -> Response:
    def body() -> Response:
        url = str(request.base_url).rstrip("/") + PREFIX + "/"
        data = {
            "changeset": CHANGESET,
            "contact": "SafeCity dispatch",
            "key_service": "API keys are issued by the city's administrators.",
            "endpoints": [
                {
                    "specification": SPEC_URL,
                    "url": url,
                    "changeset": CHANGESET,
                    "type": "production",
                    "formats": ["text/xml", "application/json"],
                }
            ],
        }
        return respond(fmt, data, root="discovery", item=None)

    return _handled(fmt, body)


@router.get("/services.{fmt}", summary="Open311 service list")
def services(request: Request, session: DbSession, fmt: Format) -> Response:
    def body() -> Response:
        lang = _lang(request)
        data = [service_entry(code, lang) for code in routing.offered_codes(session)]
        return respond(fmt, data, root="services", item="service")

    return _handled(fmt, body)


@router.get("/services/{service_code}.{fmt}", summary="Open311 service definition")
def service_definition(session: DbSession, service_code: str, fmt: Format) -> Response:
    def body() -> Response:
        code = _offered(session, service_code)
        data = {"service_code": code, "attributes": []}
        return respond(fmt, data, root="service_definition", item=None)

    return _handled(fmt, body)


@router.get("/requests.{fmt}", summary="Open311 service requests (public, redacted)")
def list_requests(request: Request, session: DbSession, fmt: Format) -> Response:
    def body() -> Response:
        params = request.query_params
        query = select(WorkOrder)
        ids = _csv(params.get("service_request_id"))
        if ids:
            if len(ids) > MAX_IDS:
                raise Open311Error(400, f"at most {MAX_IDS} service_request_id values")
            for value in ids:
                if not _REQUEST_ID.match(value):
                    raise Open311Error(400, "service_request_id is malformed")
            query = query.where(WorkOrder.service_request_id.in_(ids))
        else:
            codes = _csv(params.get("service_code"))
            if codes:
                query = query.where(WorkOrder.service_code.in_(codes))
            start = _parse_date("start_date", params.get("start_date"))
            end = _parse_date("end_date", params.get("end_date"))
            if start is None and end is None:
                end = datetime.now(UTC)
            if start is None:
                assert end is not None
                start = end - MAX_WINDOW
            if end is None:
                end = start + MAX_WINDOW
            if end < start:
                raise Open311Error(400, "end_date is before start_date")
            if end - start > MAX_WINDOW:
                raise Open311Error(400, "start_date and end_date may not span more than 90 days")
            query = query.where(WorkOrder.created_at >= start, WorkOrder.created_at <= end)
            statuses = _csv(params.get("status"))
            states: list[str] = []
            for status in statuses:
                if status == "open":
                    states.extend(OPEN_STATES)
                elif status == "closed":
                    states.extend(CLOSED_STATES)
                else:
                    raise Open311Error(400, "status must be open or closed")
            if states:
                query = query.where(WorkOrder.state.in_(states))
        orders = session.scalars(
            query.order_by(WorkOrder.created_at.desc(), WorkOrder.id).limit(MAX_RESULTS)
        ).all()
        data = _entries(session, orders, _lang(request))
        return respond(fmt, data, root="service_requests", item="request")

    return _handled(fmt, body)


@router.get("/requests/{request_id}.{fmt}", summary="One Open311 service request (redacted)")
def get_request(request: Request, session: DbSession, request_id: str, fmt: Format) -> Response:
    def body() -> Response:
        if not _REQUEST_ID.match(request_id):
            raise Open311Error(400, "service_request_id is malformed")
        order = session.scalars(
            select(WorkOrder).where(WorkOrder.service_request_id == request_id)
        ).first()
        if order is None:
            raise Open311Error(404, f"service request {request_id} not found")
        data = _entries(session, [order], _lang(request))
        return respond(fmt, data, root="service_requests", item="request")

    return _handled(fmt, body)


@router.post(
    "/requests.{fmt}",
    summary="File an Open311 service request (form-encoded; api_key required)",
    status_code=201,
)
async def post_request(request: Request, session: DbSession, fmt: Format) -> Response:
    # Authenticated by the specification's api_key (checked below), not by a bearer token.
    form: dict[str, str] = dict(request.query_params.items())
    if fmt in FORMATS:
        try:
            parsed = await request.form()
        except Exception:  # a malformed body: answered in the specification's format
            return error_response(fmt, 400, "the body must be form-encoded")
        for key, value in parsed.multi_items():
            if isinstance(value, str):
                form[key] = value
    # The database work runs in the thread pool, like the synchronous routes.
    return await run_in_threadpool(_handled, fmt, lambda: _create(session, form, fmt))


def _create(session: Session, form: dict[str, str], fmt: str) -> Response:
    api_key = form.get("api_key", "").strip()
    if not api_key:
        raise Open311Error(403, "api_key was not provided")
    try:
        principal = authenticate_token(session=session, token=api_key)
    except Unauthenticated:
        raise Open311Error(403, "api_key is invalid") from None
    if not principal.can(SUBMIT):
        raise Open311Error(403, "api_key may not submit service requests")
    code = form.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code was not provided")
    if code not in routing.offered_codes(session):
        raise Open311Error(400, f"service_code {code[:64]!r} is not a service of this city")
    lat_raw, lng_raw = form.get("lat", "").strip(), form.get("long", "").strip()
    address = _one(form, "address_string", 500)
    address_id = _one(form, "address_id", 200)
    lat = lng = None
    if lat_raw or lng_raw:
        if not (lat_raw and lng_raw):
            raise Open311Error(400, "give both lat and long")
        lat, lng = _float("lat", lat_raw), _float("long", lng_raw)
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            raise Open311Error(400, "lat/long are outside WGS84 ranges")
    elif address is None and address_id is None:
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    description = _one(form, "description", MAX_DESCRIPTION) or ""
    media_url = _one(form, "media_url", 1000)
    if media_url is not None and not media_url.startswith(("http://", "https://")):
        raise Open311Error(400, "media_url must be an http(s) URL")
    attributes: dict[str, str] = {}
    for key, value in form.items():
        match = _ATTRIBUTE.match(key)
        if match:
            attributes[match.group(1)] = value[:200]
    if len(attributes) > MAX_ATTRIBUTES:
        raise Open311Error(400, f"at most {MAX_ATTRIBUTES} attributes")
    detail: dict[str, Any] = {"client_id": principal.id}
    if attributes:
        detail["attributes"] = attributes
    if address_id is not None:
        detail["address_id"] = address_id
    requester = {
        "email": _one(form, "email", 254),
        "first_name": _one(form, "first_name", 100),
        "last_name": _one(form, "last_name", 100),
        "phone": _one(form, "phone", 40),
    }
    order = dispatch.open_work_order(
        session,
        service_code=code,
        description=description,
        lat=lat,
        lng=lng,
        source=SOURCE,
        source_ref=principal.username[:200],
        detail=detail,
        actor_id=principal.id,
        requester=requester,
        address=address,
        media_url=media_url,
        principal=principal,
    )
    data = [
        {"service_request_id": order.service_request_id, "service_notice": "", "account_id": ""}
    ]
    return respond(fmt, data, root="service_requests", item="request", status=201)
