"""HTTP API of the e-certificate registry.

Public (no login, :func:`~safecity.security.rbac.public`):

* ``GET /status/{n}`` — IETF Token Status List JWT (``application/statuslist+jwt``);
  ``GET /status/{n}/{revocation|suspension}`` — W3C Bitstring Status List credential
  (JSON, or a signed ``vc+jwt`` with ``Accept: application/vc+jwt``); both ``ttl`` 300 s;
* ``GET /api/eservices/issuer-keys`` (JWKS, every issuer key incl. rotated-out ones) and
  ``GET /.well-known/jwt-vc-issuer`` (SD-JWT VC issuer metadata);
* ``GET /api/eservices/trust-bundle`` (signed offline bundle) and
  ``GET /api/eservices/trust-anchor`` (the bundle signer's key that devices pin);
* ``POST /api/eservices/verify`` (QR text or SD-JWT presentation → verdict) and
  ``POST /api/eservices/verify/challenge`` (a one-time nonce for a presentation);
  rate-limited per client.

Citizens (``certificates:own``): ``/api/eservices/me/certificates`` — list, one (claims:
audited), ``/qr`` (``format`` text / png / svg, ``profile``), ``/pdf``, ``/presentations``.
Staff: ``/api/eservices/certificates`` — list in scope and read (``certificates:read``),
``/revoke``, ``/suspend``, ``/reinstate``, ``/reissue`` with a reason
(``certificates:manage``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from safecity.eservices import registry, verification, verify_page
from safecity.eservices.credentials import PROFILES, qr_png, qr_svg
from safecity.eservices.registry import MANAGE, OWN, READ, CertificateDetail, CertificateRead
from safecity.platform.api_params import RecordId
from safecity.platform.errors import InvalidInput
from safecity.platform.ratelimit import rate_limit
from safecity.platform.runtime import DbSession, get_runtime
from safecity.security.rbac import Principal, public, require

router = APIRouter(prefix="/api/eservices", tags=["eservices-certificates"])
public_router = APIRouter(tags=["eservices-certificates"], dependencies=[Depends(public)])
verify_limited = [Depends(rate_limit("eservices-verify", per_minute=600, burst=120))]
fetch_limited = [Depends(rate_limit("eservices-status", per_minute=600, burst=120))]

Holder = Annotated[Principal, Depends(require(OWN))]
Reader = Annotated[Principal, Depends(require(READ))]
Manager = Annotated[Principal, Depends(require(MANAGE))]
ListId = Annotated[int, Path(ge=1, le=1_000_000)]
Purpose = Annotated[str, Path(pattern=r"^(revocation|suspension)$")]
ProfileName = Annotated[str | None, Query(max_length=32, pattern=r"^[a-z0-9-]+$")]
STATUS_CACHE = "public, max-age=300"
ReasonCode = Literal[
    "unspecified",
    "superseded",
    "data_corrected",
    "holder_request",
    "issued_in_error",
    "withdrawn_by_authority",
]


class VerifyIn(BaseModel):
    text: str = Field(min_length=1, max_length=verification.MAX_TEXT)
    profile: str | None = Field(default=None, max_length=32, pattern=r"^[a-z0-9-]+$")
    audience: str | None = Field(default=None, max_length=200)
    nonce: str | None = Field(default=None, max_length=200)


class ChallengeIn(BaseModel):
    audience: str = Field(min_length=1, max_length=200)


class ReasonIn(BaseModel):
    reason: str = Field(min_length=1, max_length=registry.MAX_REASON)


class RevokeIn(ReasonIn):
    """``code`` is published to verifiers (offline too); ``reason`` stays private."""

    code: ReasonCode = "unspecified"


class OptionalReasonIn(BaseModel):
    reason: str | None = Field(default=None, max_length=registry.MAX_REASON)


class ReissueIn(BaseModel):
    reason: str = Field(min_length=1, max_length=registry.MAX_REASON)
    changes: dict[str, Any] = Field(min_length=1, max_length=20)


class PresentIn(BaseModel):
    profile: str = Field(max_length=32, pattern=r"^[a-z0-9-]+$")
    audience: str = Field(min_length=1, max_length=200)
    nonce: str = Field(min_length=8, max_length=200)


def verifier_cache(request: Request) -> verification.VerifierCache:
    runtime = get_runtime(request)
    return verification.cache_for(runtime.sessions, runtime.settings.effective_key_dir)


# --------------------------------------------------------------------------- public


@public_router.get(
    "/status/{list_id}",
    dependencies=fetch_limited,
    response_class=Response,
    responses={200: {"content": {"application/statuslist+jwt": {}}}},
    summary="Token Status List (signed JWT, ttl 300 s)",
)
def token_status_list(session: DbSession, list_id: ListId) -> Response:
    token = registry.status_list_token(session, list_id)
    return Response(
        token, media_type="application/statuslist+jwt", headers={"Cache-Control": STATUS_CACHE}
    )


@public_router.get(
    "/status/{list_id}/{purpose}",
    dependencies=fetch_limited,
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/vc+jwt": {}}}},
    summary="Bitstring Status List credential (JSON, or vc+jwt by Accept), ttl 300 s",
)
def bitstring_status_list(
    request: Request, session: DbSession, list_id: ListId, purpose: Purpose
) -> Response:
    signed = "application/vc+jwt" in request.headers.get("accept", "")
    doc = registry.bitstring_credential(session, list_id, purpose, signed=signed)
    headers = {"Cache-Control": STATUS_CACHE}
    if isinstance(doc, str):
        return Response(doc, media_type="application/vc+jwt", headers=headers)
    return JSONResponse(doc, headers=headers)


@public_router.get(
    "/api/eservices/issuer-keys", dependencies=fetch_limited, summary="Issuer public keys (JWK Set)"
)
def issuer_keys(session: DbSession) -> dict[str, Any]:
    return registry.issuer_jwks(session)


@public_router.get(
    "/.well-known/jwt-vc-issuer", dependencies=fetch_limited, summary="SD-JWT VC issuer metadata"
)
def jwt_vc_issuer(session: DbSession) -> dict[str, Any]:
    return registry.issuer_metadata(session)


@public_router.get(
    "/api/eservices/trust-bundle",
    dependencies=fetch_limited,
    response_class=Response,
    responses={200: {"content": {"application/jwt": {}}}},
    summary="Signed offline trust bundle: issuer keys + status snapshots",
)
def trust_bundle(session: DbSession) -> Response:
    return Response(
        registry.trust_bundle(session),
        media_type="application/jwt",
        headers={"Cache-Control": STATUS_CACHE},
    )


@public_router.get("/api/eservices/trust-anchor", summary="Bundle signer key devices pin")
def trust_anchor(request: Request) -> dict[str, Any]:
    return registry.trust_anchor_jwks(get_runtime(request).settings.effective_key_dir)


@public_router.post(
    "/api/eservices/verify",
    dependencies=verify_limited,
    summary="Verify an SC1: QR text or an SD-JWT presentation",
)
def verify(request: Request, body: VerifyIn) -> dict[str, Any]:
    if body.profile is not None and body.profile not in PROFILES:
        raise InvalidInput(f"unknown purpose profile; known: {', '.join(sorted(PROFILES))}")
    verdict = verification.verify_text(
        body.text,
        cache=verifier_cache(request),
        profile=body.profile,
        audience=body.audience,
        nonce=body.nonce,
        challenges=verification.CHALLENGES,
    )
    return verification.verdict_dict(verdict)


@public_router.post(
    "/api/eservices/verify/challenge",
    dependencies=verify_limited,
    summary="A one-time nonce (5 minutes) for a holder's key-bound presentation",
)
def challenge(body: ChallengeIn) -> dict[str, Any]:
    now = datetime.now(UTC)
    nonce = verification.CHALLENGES.issue(body.audience, now)
    ttl = int(verification.CHALLENGE_TTL.total_seconds())
    return {"audience": body.audience, "nonce": nonce, "expires_in": ttl}


# --------------------------------------------------------------------------- citizens


@router.get("/me/certificates", response_model=list[CertificateRead], summary="My certificates")
def my_certificates(principal: Holder, session: DbSession) -> list[CertificateRead]:
    return registry.my_certificates(session=session, principal=principal)


@router.get(
    "/me/certificates/{certificate_id}",
    response_model=CertificateDetail,
    summary="One of my certificates, with its claims (audited)",
)
def my_certificate(
    principal: Holder, session: DbSession, certificate_id: RecordId
) -> CertificateDetail:
    return registry.get_certificate(
        session=session, principal=principal, certificate_id=certificate_id
    )


@router.get(
    "/me/certificates/{certificate_id}/qr",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}, "image/png": {}, "image/svg+xml": {}}}},
    summary="A fresh offline QR (5 minutes, one purpose profile): text, PNG or SVG",
)
def my_qr(
    principal: Holder,
    session: DbSession,
    certificate_id: RecordId,
    profile: ProfileName = None,
    format: Literal["text", "png", "svg"] = "text",
) -> Response:
    text = registry.certificate_qr(
        session=session, principal=principal, certificate_id=certificate_id, profile=profile
    )
    headers = {"Cache-Control": "no-store"}
    if format == "png":
        return Response(qr_png(text, scale=6), media_type="image/png", headers=headers)
    if format == "svg":
        return Response(qr_svg(text, scale=6), media_type="image/svg+xml", headers=headers)
    return Response(text, media_type="text/plain", headers=headers)


@router.get(
    "/me/certificates/{certificate_id}/pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
    summary="The printable certificate with its QR",
)
def my_pdf(principal: Holder, session: DbSession, certificate_id: RecordId) -> Response:
    data = registry.certificate_pdf(
        session=session, principal=principal, certificate_id=certificate_id
    )
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="certificate-{certificate_id}.pdf"',
        },
    )


@router.post(
    "/me/certificates/{certificate_id}/presentations",
    summary="An SD-JWT presentation by the hosted wallet (profile, audience, nonce)",
)
def my_presentation(
    principal: Holder, session: DbSession, certificate_id: RecordId, body: PresentIn
) -> dict[str, str]:
    text = registry.present_certificate(
        session=session,
        principal=principal,
        certificate_id=certificate_id,
        profile=body.profile,
        audience=body.audience,
        nonce=body.nonce,
    )
    return {"presentation": text}


# --------------------------------------------------------------------------- staff


@router.get("/certificates", response_model=list[CertificateRead], summary="Certificates in scope")
def list_certificates(
    principal: Reader,
    session: DbSession,
    state: Annotated[str | None, Query(pattern=r"^(active|suspended|revoked)$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[CertificateRead]:
    return registry.list_certificates(
        session=session, principal=principal, state=state, limit=limit, offset=offset
    )


@router.get(
    "/certificates/{certificate_id}",
    response_model=CertificateDetail,
    summary="One certificate with its claims (audited)",
)
def get_certificate(
    principal: Reader, session: DbSession, certificate_id: RecordId
) -> CertificateDetail:
    return registry.get_certificate(
        session=session, principal=principal, certificate_id=certificate_id, purpose="case handling"
    )


@router.post(
    "/certificates/{certificate_id}/revoke",
    response_model=CertificateRead,
    summary="Revoke every batch copy (final)",
)
def revoke(
    principal: Manager, session: DbSession, certificate_id: RecordId, body: RevokeIn
) -> CertificateRead:
    return registry.revoke(
        session=session,
        principal=principal,
        certificate_id=certificate_id,
        reason=body.reason,
        code=body.code,
    )


@router.post(
    "/certificates/{certificate_id}/suspend",
    response_model=CertificateRead,
    summary="Suspend every batch copy",
)
def suspend(
    principal: Manager, session: DbSession, certificate_id: RecordId, body: ReasonIn
) -> CertificateRead:
    return registry.suspend(
        session=session, principal=principal, certificate_id=certificate_id, reason=body.reason
    )


@router.post(
    "/certificates/{certificate_id}/reinstate",
    response_model=CertificateRead,
    summary="Lift a suspension",
)
def reinstate(
    principal: Manager, session: DbSession, certificate_id: RecordId, body: OptionalReasonIn
) -> CertificateRead:
    return registry.reinstate(
        session=session, principal=principal, certificate_id=certificate_id, reason=body.reason
    )


@router.post(
    "/certificates/{certificate_id}/reissue",
    response_model=CertificateRead,
    summary="An attribute changed: revoke all copies and issue the next generation",
)
def reissue(
    principal: Manager, session: DbSession, certificate_id: RecordId, body: ReissueIn
) -> CertificateRead:
    return registry.reissue(
        session=session,
        principal=principal,
        certificate_id=certificate_id,
        changes=body.changes,
        reason=body.reason,
    )


#: Everything the certificate registry serves (the app includes this one router).
routes = APIRouter()
for _router in (router, public_router, verify_page.router):
    routes.include_router(_router)
