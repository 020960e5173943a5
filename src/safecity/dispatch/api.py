"""HTTP API of the dispatch domain: work orders (list, read, open, transitions, replies),
the routing table, and the public notices."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from safecity.dispatch import notices, routing, service
from safecity.dispatch.models import WorkOrder
from safecity.dispatch.schemas import (
    NoticeRead,
    ReplyIn,
    ReplyRead,
    RoutingRuleIn,
    RoutingRuleRead,
    TransitionIn,
    WorkOrderDetail,
    WorkOrderIn,
    WorkOrderRead,
)
from safecity.dispatch.workflow import READ, ROUTE, WORK_ORDER, WRITE
from safecity.platform.api_params import RecordId, TransitionName
from safecity.platform.pagination import ListParams, ListSpec, Page
from safecity.platform.runtime import DbSession
from safecity.security.rbac import Principal, public, require

router = APIRouter(prefix="/api/dispatch", tags=["dispatch"])

WORK_ORDER_LIST = ListSpec(
    sort={
        "created_at": WorkOrder.created_at,
        "updated_at": WorkOrder.updated_at,
        "service_code": WorkOrder.service_code,
        "state": WorkOrder.state,
    },
    filters={
        "status": WorkOrder.state,
        "service_code": WorkOrder.service_code,
        "department_id": WorkOrder.department_id,
        "area_org_id": WorkOrder.area_org_id,
        "source": WorkOrder.source,
        "source_ref": WorkOrder.source_ref,
    },
    default_sort="-created_at",
    tiebreak=WorkOrder.id,
)

Reader = Annotated[Principal, Depends(require(READ))]
Writer = Annotated[Principal, Depends(require(WRITE))]
Router = Annotated[Principal, Depends(require(ROUTE))]
OrderId = RecordId
RuleId = RecordId


@router.get(
    "/work-orders", response_model=Page[WorkOrderRead], summary="Work orders in the caller's scope"
)
def list_work_orders(
    principal: Reader,
    session: DbSession,
    params: Annotated[ListParams, Depends(WORK_ORDER_LIST.params)],
) -> Page[WorkOrderRead]:
    return service.list_orders(session=session, principal=principal, params=params)


@router.post(
    "/work-orders", response_model=WorkOrderDetail, status_code=201, summary="Open a work order"
)
def open_work_order(principal: Writer, session: DbSession, body: WorkOrderIn) -> WorkOrderDetail:
    order = service.open_work_order(
        session,
        service_code=body.service_code,
        description=body.description,
        lat=body.lat,
        lng=body.lng,
        source="console",
        org_id=principal.org_id or None,
        dedup_key=body.dedup_key,
        actor_id=principal.id,
        address=body.address,
        principal=principal,
    )
    return service.detail(session=session, principal=principal, order_id=order.id)


@router.get("/work-orders/workflow", summary="The work order state machine")
def work_order_workflow(principal: Reader) -> dict[str, Any]:
    return WORK_ORDER.as_graph()


@router.get(
    "/work-orders/{order_id}",
    response_model=WorkOrderDetail,
    summary="One work order with replies and timeline",
)
def get_work_order(principal: Reader, session: DbSession, order_id: OrderId) -> WorkOrderDetail:
    return service.detail(session=session, principal=principal, order_id=order_id)


@router.post(
    "/work-orders/{order_id}/transitions/{name}",
    response_model=WorkOrderDetail,
    summary="Accept, start, close (notes), reject (notes)",
)
def apply_transition(
    principal: Writer,
    session: DbSession,
    order_id: OrderId,
    name: TransitionName,
    body: Annotated[TransitionIn | None, Body()] = None,
) -> WorkOrderDetail:
    service.transition(
        session=session,
        principal=principal,
        order_id=order_id,
        name=name,
        notes=body.notes if body else None,
    )
    return service.detail(session=session, principal=principal, order_id=order_id)


@router.post(
    "/work-orders/{order_id}/replies",
    response_model=ReplyRead,
    status_code=201,
    summary="Reply (public) or add an internal note",
)
def add_reply(principal: Writer, session: DbSession, order_id: OrderId, body: ReplyIn) -> ReplyRead:
    row = service.reply(
        session=session, principal=principal, order_id=order_id, body=body.body, public=body.public
    )
    return ReplyRead.model_validate(row)


@router.get("/routing", response_model=list[RoutingRuleRead], summary="The routing table")
def list_routing(principal: Reader, session: DbSession) -> list[RoutingRuleRead]:
    return [RoutingRuleRead.model_validate(r) for r in routing.list_rules(session)]


@router.get(
    "/routing/resolve/{service_code}/{area_org_id}",
    summary="Which org handles a service code at a place owned by an area",
)
def resolve_routing(
    principal: Reader,
    session: DbSession,
    service_code: Annotated[str, Path(min_length=1, max_length=64)],
    area_org_id: Annotated[str, Path(min_length=1, max_length=32)],
) -> dict[str, str]:
    routing.check_service_code(service_code)
    handler = routing.resolve(session, service_code=service_code, area_org_id=area_org_id)
    return {"service_code": service_code, "area_org_id": area_org_id, "department_id": handler}


@router.put("/routing", response_model=RoutingRuleRead, summary="Create or change a routing rule")
def set_routing(principal: Router, session: DbSession, body: RoutingRuleIn) -> RoutingRuleRead:
    rule = routing.set_rule(
        session,
        principal=principal,
        service_code=body.service_code,
        area_org_id=body.area_org_id,
        department_id=body.department_id,
    )
    return RoutingRuleRead.model_validate(rule)


@router.delete("/routing/{rule_id}", status_code=204, summary="Delete a routing rule")
def delete_routing(principal: Router, session: DbSession, rule_id: RuleId) -> Response:
    routing.delete_rule(session, principal=principal, rule_id=rule_id)
    return Response(status_code=204)


@router.get(
    "/notices",
    response_model=list[NoticeRead],
    dependencies=[Depends(public)],
    summary="Public notices (building level; no flat numbers)",
)
def list_notices(
    session: DbSession, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[NoticeRead]:
    return [NoticeRead.model_validate(n) for n in notices.list_public(session, limit=limit)]
