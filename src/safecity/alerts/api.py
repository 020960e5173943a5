"""HTTP API of the alerts domain: list, read (with timeline), transitions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends

from safecity.alerts import service
from safecity.alerts.models import Alert
from safecity.alerts.schemas import AlertDetail, AlertRead, TransitionIn
from safecity.alerts.workflow import ACT, ALERT, READ
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.pagination import ListParams, ListSpec, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, require

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

ALERT_LIST = ListSpec(
    sort={
        "created_at": Alert.created_at,
        "updated_at": Alert.updated_at,
        "last_seen_at": Alert.last_seen_at,
        "sla_due_at": Alert.sla_due_at,
        "severity": Alert.severity,
        "count": Alert.count,
    },
    filters={
        "status": Alert.state,
        "severity": Alert.severity,
        "category": Alert.category,
        "source": Alert.source,
        "org_id": Alert.org_id,
        "escalated": Alert.escalated,
    },
    default_sort="-updated_at",
    tiebreak=Alert.id,
)

Reader = Annotated[Principal, Depends(require(READ))]
Actor = Annotated[Principal, Depends(require(ACT))]
AlertId = RecordId


@router.get("", response_model=Page[AlertRead], summary="Alerts in the caller's scope")
def list_alerts(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(ALERT_LIST.params)],
) -> Page[AlertRead]:
    return service.list_alerts(session=session, principal=principal, params=params)


@router.get("/workflow", summary="The alert state machine (states, transitions, permissions)")
def alert_workflow(principal: Reader) -> dict[str, Any]:
    return ALERT.as_graph()


@router.get("/{alert_id}", response_model=AlertDetail, summary="One alert with its timeline")
def get_alert(principal: Reader, session: DbSession, alert_id: AlertId) -> AlertDetail:
    return service.detail(session=session, principal=principal, alert_id=alert_id)


@router.post(
    "/{alert_id}/transitions/{name}",
    response_model=AlertDetail,
    summary="Acknowledge, go on scene, resolve (notes), mark false alarm (notes), escalate",
)
def apply_transition(
    principal: Actor,
    session: DbSession,
    alert_id: AlertId,
    name: TransitionName,
    body: Annotated[TransitionIn | None, Body()] = None,
) -> AlertDetail:
    service.transition(
        session=session,
        principal=principal,
        alert_id=alert_id,
        name=name,
        notes=body.notes if body else None,
    )
    return service.detail(session=session, principal=principal, alert_id=alert_id)
