"""HTTP API of the fraud domain: feed intake, the indicator store (with exports and
appeals), actions and the dashboard numbers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import PlainTextResponse

from safecity.fraud import actions, dashboard, feeds, indicators, pipeline
from safecity.fraud.schemas import (
    ActionCloseIn,
    ActionRead,
    AppealDecisionIn,
    AppealIn,
    AppealRead,
    AppealReceived,
    DashboardRead,
    FeedAccepted,
    FeedBatch,
    IndicatorIn,
    IndicatorRead,
    TransitionIn,
)
from safecity.fraud.workflow import ACT, EXPORT, INGEST, READ, REVIEW
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.ratelimit import rate_limit
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, public, require

router = APIRouter(prefix="/api/fraud", tags=["fraud"])

Reader = Annotated[Principal, Depends(require(READ))]
Reviewer = Annotated[Principal, Depends(require(REVIEW))]
Actor = Annotated[Principal, Depends(require(ACT))]
Exporter = Annotated[Principal, Depends(require(EXPORT))]
Ingester = Annotated[Principal, Depends(require(INGEST))]
FeedName = Annotated[str, Path(pattern=r"^[a-z]{1,16}$")]
KindFilter = Annotated[str | None, Query(pattern=r"^(phone|account|domain)$")]
StateFilter = Annotated[str | None, Query(pattern=r"^[a-z_]{1,16}$")]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=1_000_000)]


@router.get("/feeds", summary="The intake feeds and their JSON schemas")
def list_feeds(principal: Reader) -> dict[str, Any]:
    return {
        name: {
            "description": f.description,
            "retention_days": f.retention_days,
            "purpose": feeds.PURPOSE,
            "schema": f.model.model_json_schema(),
        }
        for name, f in feeds.FEEDS.items()
    }


@router.post(
    "/feeds/{feed}",
    response_model=FeedAccepted,
    status_code=202,
    summary="Send a batch of feed records (all or nothing)",
)
def ingest(
    principal: Ingester, session: DbSession, feed: FeedName, body: FeedBatch
) -> FeedAccepted:
    count = pipeline.ingest(
        session=session,
        feed=feed,
        records=body.records,
        text_scorer=pipeline.configured_text_scorer(session),
    )
    return FeedAccepted(feed=feed, accepted=count)


# --------------------------------------------------------------------------- indicators


@router.get("/indicators", response_model=list[IndicatorRead], summary="Block-list entries")
def list_indicators(
    principal: Reader,
    session: DbSession,
    state: StateFilter = None,
    kind: KindFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[IndicatorRead]:
    rows = indicators.list_indicators(
        session=session, principal=principal, state=state, kind=kind, limit=limit, offset=offset
    )
    return [IndicatorRead.model_validate(r) for r in rows]


@router.post(
    "/indicators", response_model=IndicatorRead, status_code=201, summary="Add or propose an entry"
)
def add_indicator(principal: Reviewer, session: DbSession, body: IndicatorIn) -> IndicatorRead:
    row = indicators.add(
        session=session,
        principal=principal,
        kind=body.kind,
        value=body.value,
        source=body.source,
        evidence=body.evidence,
        confidence=body.confidence,
        reasons=body.reasons,
        expires_at=body.expires_at,
        active=body.active,
    )
    return IndicatorRead.model_validate(row)


@router.get("/indicators/{indicator_id}", response_model=IndicatorRead, summary="One entry")
def get_indicator(principal: Reader, session: DbSession, indicator_id: RecordId) -> IndicatorRead:
    row = indicators.read(session=session, principal=principal, indicator_id=indicator_id)
    return IndicatorRead.model_validate(row)


@router.post(
    "/indicators/{indicator_id}/transitions/{name}",
    response_model=IndicatorRead,
    summary="Approve, reject, remove, expire or reinstate an entry",
)
def indicator_transition(
    principal: Reviewer,
    session: DbSession,
    indicator_id: RecordId,
    name: TransitionName,
    body: TransitionIn | None = None,
) -> IndicatorRead:
    row = indicators.transition(
        session=session,
        principal=principal,
        indicator_id=indicator_id,
        name=name,
        notes=body.notes if body else None,
    )
    return IndicatorRead.model_validate(row)


@router.get(
    "/exports/blocklist.csv",
    response_class=PlainTextResponse,
    summary="Active entries as CSV (for operators, banks, registrars)",
)
def export_csv(
    principal: Exporter, session: DbSession, kind: KindFilter = None
) -> PlainTextResponse:
    text = indicators.export_csv(session=session, principal=principal, kind=kind)
    return PlainTextResponse(text, media_type="text/csv; charset=utf-8")


@router.get(
    "/exports/blocklist.jws",
    response_class=PlainTextResponse,
    summary="Active entries as a signed JSON feed (compact JWS, Ed25519)",
)
def export_signed(
    principal: Exporter, session: DbSession, kind: KindFilter = None
) -> PlainTextResponse:
    token = indicators.export_signed(session=session, principal=principal, kind=kind)
    return PlainTextResponse(token, media_type="application/jose")


@router.get(
    "/exports/key",
    dependencies=[Depends(public)],
    summary="The public key (JWK) that verifies the signed feed",
)
def export_key(session: DbSession) -> dict[str, Any]:
    key = indicators.feed_key(session)
    return dict(key.as_dict(private=False))


# --------------------------------------------------------------------------- appeals


@router.post(
    "/appeals",
    response_model=AppealReceived,
    status_code=202,
    dependencies=[Depends(public), Depends(rate_limit("fraud-appeal", per_minute=10, burst=5))],
    summary="Ask for an entry's removal (no login; the answer never reveals listing)",
)
def file_appeal(session: DbSession, body: AppealIn) -> AppealReceived:
    indicators.appeal(
        session=session, kind=body.kind, value=body.value, contact=body.contact, reason=body.reason
    )
    return AppealReceived()


@router.get("/appeals", response_model=list[AppealRead], summary="Open appeals")
def list_appeals(principal: Reviewer, session: DbSession, limit: Limit = 100) -> list[AppealRead]:
    return [
        AppealRead.model_validate(a)
        for a in indicators.list_appeals(session=session, principal=principal, limit=limit)
    ]


@router.post(
    "/appeals/{appeal_id}/decision", response_model=AppealRead, summary="Uphold or reject an appeal"
)
def decide_appeal(
    principal: Reviewer, session: DbSession, appeal_id: RecordId, body: AppealDecisionIn
) -> AppealRead:
    row = indicators.decide_appeal(
        session=session,
        principal=principal,
        appeal_id=appeal_id,
        uphold=body.uphold,
        notes=body.notes,
    )
    return AppealRead.model_validate(row)


# --------------------------------------------------------------------------- actions


@router.get("/actions", response_model=list[ActionRead], summary="Actions in the caller's scope")
def list_actions(
    principal: Reader,
    session: DbSession,
    state: StateFilter = None,
    action: StateFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ActionRead]:
    rows = actions.list_actions(
        session=session, principal=principal, state=state, action=action, limit=limit, offset=offset
    )
    return [ActionRead.model_validate(r) for r in rows]


@router.get("/actions/{action_id}", response_model=ActionRead, summary="One action")
def get_action(principal: Reader, session: DbSession, action_id: RecordId) -> ActionRead:
    return ActionRead.model_validate(
        actions.get(session=session, principal=principal, action_id=action_id)
    )


@router.post(
    "/actions/{action_id}/close",
    response_model=ActionRead,
    summary="Close an action with its outcome",
)
def close_action(
    principal: Actor, session: DbSession, action_id: RecordId, body: ActionCloseIn
) -> ActionRead:
    row = actions.close(
        session=session,
        principal=principal,
        action_id=action_id,
        outcome=body.outcome,
        notes=body.notes,
    )
    return ActionRead.model_validate(row)


@router.get("/dashboard", response_model=DashboardRead, summary="The four counters and the burden")
def get_dashboard(
    principal: Reader, session: DbSession, weeks: Annotated[int, Query(ge=1, le=52)] = 8
) -> DashboardRead:
    d = dashboard.build(session=session, principal=principal, weeks=weeks)
    return DashboardRead(
        weeks=d.weeks, totals=d.totals, by_week=d.by_week, by_district=d.by_district
    )
