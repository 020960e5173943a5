"""Login (password + TOTP), cookie sessions, bearer tokens, lockout, timeouts, rehash."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from argon2 import PasswordHasher, Type
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from safecity.platform.db import utcnow
from safecity.platform.errors import Unauthenticated
from safecity.platform.runtime import Runtime
from safecity.security import audit, auth, passwords, sessions, totp
from safecity.security import service as security
from safecity.security.audit import AuditEntry
from safecity.security.models import ApiToken, User, UserSession
from tests.conftest import Actor, City
from tests.security.auth_support import Person, login

pytestmark = pytest.mark.db

MakePerson = Callable[..., Person]


def _user(runtime: Runtime, user_id: str) -> User:
    with runtime.sessions() as s:
        user = s.get(User, user_id)
        assert user is not None
        return user


def _actions(runtime: Runtime) -> list[str]:
    with runtime.sessions() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def _problem(r: object) -> dict[str, object]:
    response = r  # httpx.Response
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


def test_login_sets_strict_httponly_cookie_and_me_answers(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    r = client.post("/api/auth/login", json=officer.credentials())
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{sessions.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # settings.cookie_secure is False in tests
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["user"]["roles"] == ["officer"]
    me = client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["auth_method"] == "session"
    assert me.json()["csrf_token"] == body["csrf_token"]
    assert "auth.login" in _actions(runtime)
    # The cookie holds a token whose digest (not the token) is stored.
    token = client.cookies[sessions.SESSION_COOKIE]
    with runtime.sessions() as s:
        stored = s.scalars(select(UserSession.token_hash)).one()
    assert token not in stored
    assert stored == auth.token_digest(token)


def test_cookie_is_secure_when_configured(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"cookie_secure": True})
    officer = make_person("officer", city.stations[0])
    r = client.post("/api/auth/login", json=officer.credentials())
    assert r.status_code == 200
    assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("wrong", ["password", "totp", "username", "missing_totp"])
def test_bad_credentials_get_one_answer_with_no_hint(
    client: TestClient, city: City, make_person: MakePerson, wrong: str
) -> None:
    officer = make_person("officer", city.stations[0])
    creds = officer.credentials()
    if wrong == "password":
        creds["password"] = "not the password at all"
    elif wrong == "totp":
        good = creds["totp"]
        creds["totp"] = "000000" if good != "000000" else "111111"
    elif wrong == "username":
        creds["username"] = "nobody-here"
    else:
        creds["totp"] = None
    r = client.post("/api/auth/login", json=creds)
    assert r.status_code == 401
    body = _problem(r)
    assert body["detail"] == auth.LOGIN_FAILED
    assert "set-cookie" not in r.headers
    assert client.get("/api/auth/me").status_code == 401


def test_wrong_totp_is_counted_even_though_the_request_rolls_back(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    creds = officer.credentials()
    creds["totp"] = "999999" if creds["totp"] != "999999" else "888888"
    assert client.post("/api/auth/login", json=creds).status_code == 401
    assert _user(runtime, officer.user_id).failed_logins == 1
    with runtime.sessions() as s:
        failed = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.login_failed")).one()
    assert failed.target_id == officer.user_id
    assert failed.detail == {"reason": "bad_totp"}
    assert officer.username not in str(failed.detail)


def test_a_totp_code_works_only_once(
    client: TestClient, city: City, make_person: MakePerson
) -> None:
    officer = make_person("officer", city.stations[0])
    creds = officer.credentials()
    assert client.post("/api/auth/login", json=creds).status_code == 200
    assert client.post("/api/auth/login", json=creds).status_code == 401  # replayed
    later = officer.credentials(steps_ahead=1)
    assert client.post("/api/auth/login", json=later).status_code == 200


def test_lockout_after_five_failures_for_fifteen_minutes(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    assert runtime.settings.lockout_attempts == 5
    assert runtime.settings.lockout_minutes == 15
    officer = make_person("officer", city.stations[0])
    for _ in range(5):
        bad = {**officer.credentials(), "password": "wrong password here"}
        assert client.post("/api/auth/login", json=bad).status_code == 401
    user = _user(runtime, officer.user_id)
    assert user.locked_until is not None
    assert timedelta(minutes=14) < user.locked_until - utcnow() <= timedelta(minutes=15)
    # Locked: even the right credentials fail, with the same message.
    r = client.post("/api/auth/login", json=officer.credentials())
    assert r.status_code == 401
    assert _problem(r)["detail"] == auth.LOGIN_FAILED
    assert "auth.locked" in _actions(runtime)
    # Sixteen minutes later the account opens again.
    later = utcnow() + timedelta(minutes=16)
    with runtime.sessions.begin() as s:
        principal, token = auth.login(
            session=s,
            username=officer.username,
            password=officer.password,
            totp_code=totp.code_at(officer.totp_secret or "", later),
            settings=runtime.settings,
            now=later,
        )
    assert principal.id == officer.user_id
    assert token


def test_unlock_lifts_a_lockout(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    for _ in range(5):
        bad = {**officer.credentials(), "password": "wrong password here"}
        client.post("/api/auth/login", json=bad)
    with runtime.sessions.begin() as s:
        security.unlock_user(session=s, actor=audit.SYSTEM, user_id=officer.user_id)
    assert client.post("/api/auth/login", json=officer.credentials()).status_code == 200


def test_idle_session_times_out(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    login(client, officer)
    assert client.get("/api/auth/me").status_code == 200
    idle = runtime.settings.session_idle_minutes
    with runtime.sessions.begin() as s:
        s.execute(
            update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=idle, seconds=1))
        )
    r = client.get("/api/auth/me")
    assert r.status_code == 401
    assert "inactivity" in str(_problem(r)["detail"])


def test_activity_keeps_a_session_alive(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    login(client, officer)
    idle = runtime.settings.session_idle_minutes
    with runtime.sessions.begin() as s:
        s.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(minutes=idle - 1)))
    assert client.get("/api/auth/me").status_code == 200
    with runtime.sessions() as s:
        seen = s.scalars(select(UserSession.last_seen_at)).one()
    assert utcnow() - seen < timedelta(minutes=1)  # the idle clock was reset


def test_session_has_an_absolute_lifetime(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    login(client, officer)
    with runtime.sessions() as s:
        row = s.scalars(select(UserSession)).one()
    lifetime = row.expires_at - row.created_at
    assert lifetime == timedelta(hours=runtime.settings.session_absolute_hours)
    with runtime.sessions.begin() as s:
        s.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.get("/api/auth/me")
    assert r.status_code == 401
    assert "expired" in str(_problem(r)["detail"])


def test_forged_session_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set(sessions.SESSION_COOKIE, "forged-session-value")
    r = client.get("/api/auth/me")
    assert r.status_code == 401
    _problem(r)


def test_logout_ends_the_session_and_clears_the_cookie(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    csrf = login(client, officer)
    cookie = client.cookies[sessions.SESSION_COOKIE]
    r = client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert f'{sessions.SESSION_COOKIE}=""' in r.headers["set-cookie"]
    client.cookies.set(sessions.SESSION_COOKIE, cookie)  # an attacker replays the old value
    assert client.get("/api/auth/me").status_code == 401
    assert "auth.logout" in _actions(runtime)


def test_new_login_ends_the_previous_session(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    login(client, officer)
    first = client.cookies[sessions.SESSION_COOKIE]
    login(client, officer, steps_ahead=1)
    assert client.cookies[sessions.SESSION_COOKIE] != first
    with runtime.sessions() as s:
        ended = s.scalars(
            select(UserSession.ended_at).where(UserSession.token_hash == auth.token_digest(first))
        ).one()
    assert ended is not None


def test_token_endpoint_issues_an_expiring_bearer_token(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    analyst = make_person("analyst", city.districts[0])
    r = client.post("/api/auth/tokens", json={**analyst.credentials(), "name": "script"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert "set-cookie" not in r.headers
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get("/api/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["auth_method"] == "token"
    assert me.json()["csrf_token"] is None
    with runtime.sessions() as s:
        row = s.scalars(select(ApiToken)).one()
    assert row.expires_at is not None
    assert row.expires_at - row.created_at == pytest.approx(
        timedelta(hours=runtime.settings.api_token_hours), abs=timedelta(seconds=5)
    )
    # Logging out with a bearer token revokes it.
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/auth/me", headers=headers).status_code == 401


def test_token_endpoint_counts_failures_too(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    analyst = make_person("analyst", city.districts[0])
    bad = {**analyst.credentials(), "password": "wrong password here"}
    r = client.post("/api/auth/tokens", json=bad)
    assert r.status_code == 401
    assert _problem(r)["detail"] == auth.LOGIN_FAILED
    assert _user(runtime, analyst.user_id).failed_logins == 1


def test_expired_token_is_refused(
    client: TestClient, city: City, make_actor: Callable[..., Actor], runtime: Runtime
) -> None:
    actor = make_actor("officer", city.stations[0])
    assert client.get("/api/auth/me", headers=actor.headers).status_code == 200
    with runtime.sessions.begin() as s:
        s.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = client.get("/api/auth/me", headers=actor.headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    _problem(r)


@pytest.mark.parametrize(
    "header",
    ["Bearer sct_forged-token-value", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b c"],
)
def test_forged_or_malformed_tokens_are_refused(client: TestClient, header: str) -> None:
    r = client.get("/api/auth/me", headers={"Authorization": header})
    assert r.status_code == 401
    _problem(r)


def test_tampered_token_is_refused(
    client: TestClient, city: City, make_actor: Callable[..., Actor]
) -> None:
    actor = make_actor("officer", city.stations[0])
    tampered = actor.token[:-1] + ("A" if actor.token[-1] != "A" else "B")
    r = client.get("/api/auth/me", headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401


def test_revoked_token_and_deactivated_user_are_refused(
    client: TestClient, city: City, make_actor: Callable[..., Actor], runtime: Runtime
) -> None:
    admin = make_actor("admin", city.city)
    officer = make_actor("officer", city.stations[0])
    r = client.post(f"/api/users/{officer.user_id}/deactivate", headers=admin.headers)
    assert r.status_code == 200
    assert client.get("/api/auth/me", headers=officer.headers).status_code == 401
    with runtime.sessions() as s:
        assert s.scalars(select(ApiToken.revoked).where(ApiToken.user_id == officer.user_id)).one()


def test_password_is_rehashed_on_login(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1, type=Type.ID)
    old_hash = old.hash(officer.password)
    with runtime.sessions.begin() as s:
        s.execute(update(User).where(User.id == officer.user_id).values(password_hash=old_hash))
    assert passwords.needs_rehash(old_hash)
    assert client.post("/api/auth/login", json=officer.credentials()).status_code == 200
    new_hash = _user(runtime, officer.user_id).password_hash
    assert new_hash is not None
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2id$")
    assert not passwords.needs_rehash(new_hash)
    assert passwords.verify_password(new_hash, officer.password)
    assert "auth.password_rehashed" in _actions(runtime)


def test_hashes_are_argon2id_and_verify() -> None:
    hashed = passwords.hash_password("a long enough passphrase")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "a long enough passphrase")
    assert not passwords.verify_password(hashed, "a long enough passphrasE")
    assert not passwords.verify_password("not-a-hash", "x")
    assert not passwords.verify_password(None, "x")


def test_citizen_logs_in_without_totp_but_staff_cannot(
    client: TestClient, city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    citizen = make_person("citizen", city.stations[0])
    assert citizen.totp_secret is None
    r = client.post("/api/auth/login", json=citizen.credentials())
    assert r.status_code == 200
    officer = make_person("officer", city.stations[0])
    with runtime.sessions.begin() as s:  # staff whose TOTP secret went missing
        s.execute(update(User).where(User.id == officer.user_id).values(totp_secret=None))
    creds = {**officer.credentials(), "totp": None}
    assert client.post("/api/auth/login", json=creds).status_code == 401


def test_non_human_principals_cannot_log_in_with_a_password(
    client: TestClient, city: City, runtime: Runtime
) -> None:
    with runtime.sessions.begin() as s:
        security.create_user(
            session=s,
            actor=audit.SYSTEM,
            username="relay-service",
            org_id=city.city.id,
            roles=["analyst"],
            kind="service",
        )
    r = client.post(
        "/api/auth/login", json={"username": "relay-service", "password": "anything at all"}
    )
    assert r.status_code == 401


def test_login_input_is_validated(client: TestClient) -> None:
    r = client.post("/api/auth/login", json={"username": "a", "password": "b", "extra": 1})
    assert r.status_code == 422
    _problem(r)
    r = client.post(
        "/api/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    r = client.post("/api/auth/login", json={"username": ["x"], "password": 5})
    assert r.status_code == 422
    r = client.post("/api/auth/login", json={"username": "a\x00b", "password": "p"})
    assert r.status_code == 422
    _problem(r)


def test_service_login_raises_unauthenticated(
    city: City, make_person: MakePerson, runtime: Runtime
) -> None:
    officer = make_person("officer", city.stations[0])
    with runtime.sessions() as s, pytest.raises(Unauthenticated):
        auth.login(
            session=s,
            username=officer.username,
            password="wrong password here",
            totp_code=officer.code(),
            settings=runtime.settings,
        )
    assert _user(runtime, officer.user_id).failed_logins == 1


def test_totp_helpers() -> None:
    secret = totp.new_secret()
    now = utcnow()
    code = totp.code_at(secret, now)
    assert totp.match_step(secret, code, now=now) == totp.step_at(now)
    assert totp.match_step(secret, code, now=now, after_step=totp.step_at(now)) is None
    assert totp.match_step(secret, code, now=now + timedelta(minutes=5)) is None
    assert totp.match_step(secret, "12345", now=now) is None
    assert totp.match_step(secret, "abcdef", now=now) is None
    uri = totp.provisioning_uri(secret, username="officer-1")
    assert uri.startswith("otpauth://totp/SafeCity:officer-1?")
    assert f"secret={secret}" in uri
