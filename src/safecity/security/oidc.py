"""OpenID Connect login (authorization-code flow with state, nonce and PKCE).

Enabled when ``settings.oidc_issuer`` and ``settings.oidc_client_id`` are set. The flow:

1. :func:`begin_login` stores a pending request (SHA-256 of ``state``, ``nonce``, PKCE
   verifier, redirect URI; ten minutes, single use) and returns the provider's
   authorization URL. The API also puts ``state`` in the cookie :data:`STATE_COOKIE`
   (SameSite=Lax, so the provider's redirect back carries it), binding the flow to the
   browser that started it.
2. :func:`complete_login` checks ``state`` (known, unused, unexpired, equal to the
   cookie), exchanges the code at the token endpoint (client_secret_basic + PKCE), and
   validates the ``id_token``: signature against the provider's JWKS (asymmetric
   algorithms only; keys re-fetched once for an unknown ``kid``), ``iss``, ``aud``
   (and ``azp`` when there are several audiences), ``nonce``, ``exp``, ``iat``, ``nbf``
   (60 s leeway). The ``sub`` claim must match an active person's ``oidc_subject``; no
   account is created on the fly. Then a console session starts, as with a password.

The provider is responsible for the second factor of OIDC logins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safecity.platform.db import utcnow
from safecity.platform.errors import (
    ConfigurationError,
    NotFound,
    ServiceUnavailable,
    Unauthenticated,
)
from safecity.security import audit, sessions
from safecity.security.auth import (
    HUMAN_KINDS,
    principal_for,
    record_login_failure,
    side_session,
)
from safecity.security.models import OidcLoginState, User
from safecity.security.rbac import Principal
from safecity.settings import Settings

STATE_COOKIE = "safecity_oidc_state"
STATE_TTL = timedelta(minutes=10)
LEEWAY_S = 60
METADATA_TTL_S = 3600.0
ALLOWED_ALGS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
OIDC_FAILED = "OIDC login failed"


def enabled(settings: Settings) -> bool:
    return bool(settings.oidc_issuer and settings.oidc_client_id)


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


_lock = threading.Lock()
_metadata_cache: dict[str, tuple[float, ProviderMetadata]] = {}
_jwks_cache: dict[str, tuple[float, KeySet]] = {}


def clear_caches() -> None:
    """Forget cached discovery documents and key sets (tests, key rotation)."""
    with _lock:
        _metadata_cache.clear()
        _jwks_cache.clear()


def _check_url(url: str, *, what: str) -> str:
    parts = urlsplit(url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ConfigurationError(f"OIDC {what} must be an https URL: {url!r}")
    return url


class OidcClient:
    """Talks to the configured provider. ``transport`` lets tests swap the network."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        if not enabled(settings):
            raise NotFound("OIDC login is not configured")
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self._transport = transport
        self._timeout = timeout
        _check_url(self.issuer, what="issuer")

    def _http(self) -> httpx.Client:
        return httpx.Client(
            transport=self._transport, timeout=self._timeout, follow_redirects=False
        )

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            with self._http() as http:
                response = http.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServiceUnavailable("the identity provider is not reachable") from exc
        if not isinstance(data, dict):
            raise ServiceUnavailable("the identity provider sent an invalid document")
        return data

    def metadata(self) -> ProviderMetadata:
        now = time.monotonic()
        with _lock:
            cached = _metadata_cache.get(self.issuer)
        if cached is not None and now - cached[0] < METADATA_TTL_S:
            return cached[1]
        doc = self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise ServiceUnavailable("the identity provider's discovery issuer does not match")
        try:
            meta = ProviderMetadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=_check_url(
                    str(doc["authorization_endpoint"]), what="authorization endpoint"
                ),
                token_endpoint=_check_url(str(doc["token_endpoint"]), what="token endpoint"),
                jwks_uri=_check_url(str(doc["jwks_uri"]), what="JWKS URI"),
            )
        except KeyError as exc:
            raise ServiceUnavailable(f"the identity provider's discovery lacks {exc}") from exc
        with _lock:
            _metadata_cache[self.issuer] = (now, meta)
        return meta

    def keys(self, *, refresh: bool = False) -> KeySet:
        uri = self.metadata().jwks_uri
        now = time.monotonic()
        with _lock:
            cached = _jwks_cache.get(uri)
        if cached is not None and not refresh and now - cached[0] < METADATA_TTL_S:
            return cached[1]
        doc = self._get_json(uri)
        try:
            keyset = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, KeyError, TypeError, ValueError) as exc:
            raise ServiceUnavailable("the identity provider's JWKS is invalid") from exc
        with _lock:
            _jwks_cache[uri] = (now, keyset)
        return keyset

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> str:
        """Trade the authorization code for tokens; returns the raw ``id_token``."""
        meta = self.metadata()
        try:
            with self._http() as http:
                response = http.post(
                    meta.token_endpoint,
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "code_verifier": code_verifier,
                    },
                    auth=(self.client_id, self.client_secret),
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("the identity provider is not reachable") from exc
        if response.status_code >= 500:
            raise ServiceUnavailable("the identity provider failed")
        if response.status_code != 200:
            raise Unauthenticated(f"{OIDC_FAILED}: the provider refused the code")
        try:
            body = response.json()
        except ValueError as exc:
            raise Unauthenticated(f"{OIDC_FAILED}: the provider sent no token") from exc
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str) or not id_token:
            raise Unauthenticated(f"{OIDC_FAILED}: the provider sent no id_token")
        return id_token

    def validate_id_token(
        self, id_token: str, *, nonce: str, now: datetime | None = None
    ) -> dict[str, Any]:
        """The claims of a valid ``id_token``; :class:`Unauthenticated` otherwise."""
        now = now or utcnow()
        try:
            try:
                token = jwt.decode(id_token, self.keys(), algorithms=list(ALLOWED_ALGS))
            except InvalidKeyIdError:
                token = jwt.decode(id_token, self.keys(refresh=True), algorithms=list(ALLOWED_ALGS))
        except JoseError as exc:
            raise Unauthenticated(f"{OIDC_FAILED}: id_token signature is not valid") from exc
        except ValueError as exc:  # malformed compact serialisation
            raise Unauthenticated(f"{OIDC_FAILED}: id_token is malformed") from exc
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            leeway=LEEWAY_S,
            iss={"essential": True, "value": self.metadata().issuer},
            aud={"essential": True, "value": self.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise Unauthenticated(f"{OIDC_FAILED}: id_token has expired") from exc
        except JoseError as exc:
            raise Unauthenticated(f"{OIDC_FAILED}: id_token claims are not valid") from exc
        audience = claims.get("aud")
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and claims.get("azp") != (self.client_id)
        ):
            raise Unauthenticated(f"{OIDC_FAILED}: id_token azp is not this client")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
            str(claims["nonce"]).encode(), nonce.encode()
        ):
            raise Unauthenticated(f"{OIDC_FAILED}: id_token nonce does not match")
        return claims


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def begin_login(
    *,
    session: Session,
    settings: Settings,
    redirect_uri: str,
    client: OidcClient | None = None,
    now: datetime | None = None,
) -> tuple[str, str]:
    """Start a login: returns (authorization URL to redirect to, ``state`` for the cookie)."""
    client = client or OidcClient(settings)
    now = now or utcnow()
    meta = client.metadata()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)
    session.add(
        OidcLoginState(
            state_hash=_digest(state),
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + STATE_TTL,
        )
    )
    session.flush()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
            "state": state,
            "nonce": nonce,
            "code_challenge": _pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in meta.authorization_endpoint else "?"
    return f"{meta.authorization_endpoint}{separator}{query}", state


def _consume_state(session: Session, *, state: str, now: datetime) -> tuple[str, str, str] | None:
    """Mark the pending request used, in its own transaction (it stays used even when the
    login then fails); returns (nonce, code_verifier, redirect_uri) or ``None``."""
    with side_session(session) as own, own.begin():
        row = own.scalars(
            select(OidcLoginState).where(OidcLoginState.state_hash == _digest(state))
        ).one_or_none()
        if row is None or row.used or row.expires_at <= now:
            return None
        claimed = own.execute(
            update(OidcLoginState)
            .where(OidcLoginState.id == row.id, OidcLoginState.used.is_(False))
            .values(used=True)
            .execution_options(synchronize_session=False)
        )
        if not getattr(claimed, "rowcount", 0):
            return None
        return row.nonce, row.code_verifier, row.redirect_uri


def complete_login(
    *,
    session: Session,
    settings: Settings,
    code: str,
    state: str,
    state_cookie: str | None,
    ip: str | None = None,
    client: OidcClient | None = None,
    now: datetime | None = None,
) -> tuple[Principal, str]:
    """Finish a login from the provider's redirect; returns (principal, session token)."""
    client = client or OidcClient(settings)
    now = now or utcnow()

    def fail(reason: str, message: str, user_id: str | None = None) -> Unauthenticated:
        record_login_failure(
            session, user_id=user_id, reason=reason, count=False, settings=settings, now=now
        )
        return Unauthenticated(message)

    if (
        not state
        or not state_cookie
        or not hmac.compare_digest(state.encode(), state_cookie.encode())
    ):
        raise fail("oidc_state", f"{OIDC_FAILED}: state does not match this browser")
    pending = _consume_state(session, state=state, now=now)
    if pending is None:
        raise fail("oidc_state", f"{OIDC_FAILED}: unknown, used or expired state")
    nonce, verifier, redirect_uri = pending
    try:
        id_token = client.exchange_code(
            code=code, redirect_uri=redirect_uri, code_verifier=verifier
        )
        claims = client.validate_id_token(id_token, nonce=nonce, now=now)
    except Unauthenticated as exc:
        raise fail("oidc_token", exc.detail) from exc
    user = session.scalars(
        select(User).where(User.oidc_subject == str(claims["sub"]))
    ).one_or_none()
    if (
        user is None
        or user.kind not in HUMAN_KINDS
        or not user.active
        or (user.locked_until is not None and user.locked_until > now)
    ):
        raise fail(
            "oidc_subject",
            f"{OIDC_FAILED}: no active SafeCity account is linked to this identity",
            user.id if user else None,
        )
    user.last_login_at = now
    row, token = sessions.create(
        session=session, user_id=user.id, settings=settings, auth_method="oidc", ip=ip, now=now
    )
    principal = principal_for(session=session, user=user, auth_method="oidc", session_id=row.id)
    audit.record(
        session,
        principal=principal,
        action="auth.login",
        target_type="user_session",
        target_id=row.id,
        detail={"method": "oidc"},
    )
    return principal, token
