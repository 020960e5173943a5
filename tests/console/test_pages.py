"""Console pages through the real app: login, redirects, navigation, language, logout."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from starlette.routing import Mount

from safecity.console import pages
from safecity.platform.runtime import Runtime
from safecity.security import service as security
from safecity.security.models import UserSession
from safecity.security.rbac import PUBLIC_ATTR
from tests.conftest import City
from tests.console.conftest import PASSWORD, Staff, csrf_from, log_in

pytestmark = pytest.mark.db

DOMAIN_KEYS = {
    "sensing",
    "dispatch",
    "cases",
    "linkage",
    "crowd",
    "traffic",
    "fraud",
    "eservices",
    "accidents",
}


class _Collect(HTMLParser):
    """Collects tags with their attributes, and the text inside <script>/<style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_code: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in and data.strip():
            self.inline_code.append(data)


def parse(html: str) -> _Collect:
    parser = _Collect()
    parser.feed(html)
    return parser


def assert_csp_clean(html: str) -> None:
    """No inline script or style anywhere (the CSP would block them)."""
    doc = parse(html)
    assert doc.inline_code == []
    for tag, attrs in doc.tags:
        assert tag != "style"
        assert "style" not in attrs, f"inline style on <{tag}>"
        assert not [a for a in attrs if a.startswith("on")], f"inline handler on <{tag}>"
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/console/static/")
        if tag == "link" and attrs.get("rel") == "stylesheet":
            assert (attrs.get("href") or "").startswith("/console/static/")


def test_root_redirects_to_console(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/console"


def test_logged_out_console_redirects_to_login_page(client: TestClient) -> None:
    response = client.get("/console", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    page = client.get("/console")  # following the redirect gives the HTML login page
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="totp_code"' in page.text


def test_logged_out_deep_link_keeps_where_to_go(client: TestClient) -> None:
    response = client.get("/console/partials/status", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/partials/status"
    page = client.get(response.headers["location"])
    assert 'value="/console/partials/status"' in page.text
    assert 'data-notice="login.notice.required"' in page.text


def test_logged_out_htmx_request_gets_hx_redirect(client: TestClient) -> None:
    response = client.get(
        "/console/partials/status", headers={"HX-Request": "true"}, follow_redirects=False
    )
    assert response.status_code == 401
    assert response.headers["hx-redirect"].startswith("/console/login")


def test_bad_session_cookie_redirects_and_clears_it(client: TestClient) -> None:
    client.cookies.set("safecity_session", "forged-token")
    response = client.get("/console", follow_redirects=False)
    assert response.status_code == 303
    assert 'safecity_session=""' in response.headers.get("set-cookie", "")


def test_login_page_is_complete_and_csp_clean(client: TestClient) -> None:
    page = client.get("/console/login")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for field in ("username", "password", "totp_code", "csrf_token"):
        assert f'name="{field}"' in page.text
    assert len(csrf_from(page.text)) >= 32
    assert "safecity_login_csrf" in page.headers["set-cookie"]
    assert_csp_clean(page.text)
    # Every asset the page names is served by the app itself.
    doc = parse(page.text)
    urls = [a.get("src") or a.get("href") for t, a in doc.tags if t in ("script", "link", "img")]
    assert urls
    for url in urls:
        assert url is not None
        assert url.startswith("/console/static/"), url
        assert client.get(url).status_code == 200, url


def test_login_with_totp_shows_dashboard_with_map_and_nav(
    client: TestClient, city: City, make_staff: Any
) -> None:
    admin: Staff = make_staff("admin", city.city, username="chief")
    log_in(client, admin)
    page = client.get("/console")
    assert page.status_code == 200
    html = page.text
    assert_csp_clean(html)
    assert 'id="city-map"' in html
    assert 'data-geojson-url="/api/orgs/areas.geojson"' in html
    assert 'data-tile-url=""' in html  # no third-party tiles by default
    assert "/console/static/vendor/leaflet/leaflet.js" in html
    assert "/console/static/vendor/htmx/htmx.min.js" in html
    assert set(re.findall(r'data-domain="([a-z]+)"', html)) == DOMAIN_KEYS
    live = {d.key for d in pages.DOMAINS if d.href}  # built: a link for those allowed
    assert html.count('aria-disabled="true"') == len(DOMAIN_KEYS - live)  # shown as coming
    assert 'href="/console/terminal" data-domain="sensing"' in html
    assert "chief" in html
    assert 'data-role="admin"' in html
    assert 'action="/console/logout"' in html
    assert 'hx-get="/console/partials/status"' in html
    status = client.get("/console/partials/status", headers={"HX-Request": "true"})
    assert status.status_code == 200
    assert "data-status" in status.text
    assert "<html" not in status.text  # a fragment, not a page


def test_configured_tile_url_reaches_the_map(
    app: Any, client: TestClient, city: City, make_staff: Any
) -> None:
    app.state.runtime.settings.tile_url = "https://tiles.example/{z}/{x}/{y}.png"
    log_in(client, make_staff("analyst", city.city))
    html = client.get("/console").text
    assert 'data-tile-url="https://tiles.example/{z}/{x}/{y}.png"' in html
    assert "No base map is configured" not in html
    assert "未配置底图" not in html


def test_status_panel_does_not_poll() -> None:
    """A poll would count as activity and keep an unattended session alive forever."""
    template = (Path(pages.__file__).parent / "templates" / "dashboard.html").read_text()
    assert "every " not in template


def test_dashboard_map_endpoint_answers_for_the_session(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("officer", city.stations[0]))
    response = client.get("/api/orgs/areas.geojson")
    assert response.status_code == 200
    assert response.json()["type"] == "FeatureCollection"


def test_login_goes_to_next_but_never_off_site(
    client: TestClient, city: City, make_staff: Any
) -> None:
    staff = make_staff("supervisor", city.districts[0])
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "username": staff.username,
            "password": staff.password,
            "totp_code": staff.code(),
            "csrf_token": csrf_from(page.text),
            "next": "https://evil.example/console",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/console/partials/status", "/console/partials/status"),
        ("/console?x=1", "/console?x=1"),
        ("//evil.example/console", "/console"),
        ("https://evil.example/console", "/console"),
        ("/console\\@evil.example", "/console"),
        ("/consolex", "/console"),
        ("/api/users", "/console"),
        ("/console/login", "/console"),
        ("/console/../api/users", "/console"),
        ("/console/%2e%2e/api/users", "/console"),
        ("/console/\r\nSet-Cookie:x", "/console"),
        ("", "/console"),
    ],
)
def test_safe_next(value: str, expected: str) -> None:
    assert pages.safe_next(value) == expected


def test_wrong_password_shows_translated_error_in_page(
    client: TestClient, city: City, make_staff: Any
) -> None:
    staff = make_staff("officer", city.stations[0])
    client.cookies.set("safecity_lang", "en")
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "username": staff.username,
            "password": "not the password at all",
            "totp_code": staff.code(),
            "csrf_token": csrf_from(page.text),
        },
        follow_redirects=False,
    )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "Wrong username, password or authenticator code." in response.text
    assert f'value="{staff.username}"' in response.text  # kept, the password is not
    assert "not the password at all" not in response.text
    assert "safecity_session" not in client.cookies


def test_wrong_totp_code_is_refused(client: TestClient, city: City, make_staff: Any) -> None:
    staff = make_staff("officer", city.stations[0])
    good = staff.code()
    bad = f"{(int(good) + 1) % 1_000_000:06d}"
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "username": staff.username,
            "password": staff.password,
            "totp_code": bad,
            "csrf_token": csrf_from(page.text),
        },
    )
    assert response.status_code == 401
    assert 'data-error="login.error.invalid"' in response.text
    assert "safecity_session" not in client.cookies


def test_login_without_csrf_token_changes_nothing(
    client: TestClient, runtime: Runtime, city: City, make_staff: Any
) -> None:
    staff = make_staff("officer", city.stations[0])
    client.get("/console/login")  # has the cookie, but the form omits the token
    response = client.post(
        "/console/login",
        data={"username": staff.username, "password": staff.password, "totp_code": staff.code()},
    )
    assert response.status_code == 403
    assert 'data-error="login.error.csrf"' in response.text
    assert "safecity_session" not in client.cookies
    with runtime.sessions() as s:
        assert s.scalar(select(func.count()).select_from(UserSession)) == 0


def test_login_csrf_token_must_match_cookie(
    client: TestClient, city: City, make_staff: Any
) -> None:
    staff = make_staff("officer", city.stations[0])
    client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "username": staff.username,
            "password": staff.password,
            "totp_code": staff.code(),
            "csrf_token": "x" * 43,
        },
    )
    assert response.status_code == 403
    assert "safecity_session" not in client.cookies


def test_login_page_offers_oidc_only_when_configured(app: Any, client: TestClient) -> None:
    assert "/api/auth/oidc/login" not in client.get("/console/login").text
    app.state.runtime.settings.oidc_issuer = "https://idp.example"
    page = client.get("/console/login", headers={"Accept-Language": "en"})
    assert 'href="/api/auth/oidc/login"' in page.text
    assert "Sign in with single sign-on" in page.text


def test_missing_fields_are_reported_in_page(client: TestClient) -> None:
    page = client.get("/console/login")
    response = client.post(
        "/console/login", data={"username": "someone", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 422
    assert 'data-error="login.error.missing"' in response.text


def test_logged_in_user_visiting_login_page_goes_home(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("analyst", city.city))
    response = client.get("/console/login", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console"


def test_user_without_console_permission_gets_html_403(
    client: TestClient, runtime: Runtime, city: City
) -> None:
    with runtime.sessions.begin() as s:
        security.create_user(
            session=s,
            actor=security.audit.SYSTEM,
            username="resident",
            org_id=city.city.id,
            roles=["citizen"],
            password=PASSWORD,
        )
    with runtime.sessions.begin() as s:
        _principal, token = security.login(
            session=s,
            username="resident",
            password=PASSWORD,
            totp_code=None,
            settings=runtime.settings,
        )
    client.cookies.set("safecity_session", token)
    response = client.get("/console")
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "forbidden-title" in response.text
    assert 'id="city-map"' not in response.text
    assert_csp_clean(response.text)


def test_logout_ends_the_session(client: TestClient, city: City, make_staff: Any) -> None:
    log_in(client, make_staff("officer", city.stations[1]))
    page = client.get("/console")
    response = client.post(
        "/console/logout", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?signed_out=1"
    assert "safecity_session" not in client.cookies
    notice = client.get("/console/login?signed_out=1")
    assert 'data-notice="login.notice.signed_out"' in notice.text
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_logout_without_csrf_token_is_refused_and_keeps_session(
    client: TestClient, city: City, make_staff: Any
) -> None:
    log_in(client, make_staff("officer", city.stations[1]))
    response = client.post("/console/logout", data={}, follow_redirects=False)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert client.get("/console", follow_redirects=False).status_code == 200


def test_language_switch_sets_cookie_and_translates(client: TestClient) -> None:
    zh = client.get("/console/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "工作人员登录" in zh.text
    assert '<html lang="zh-CN">' in zh.text
    response = client.get("/console/lang/en?next=/console/login", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert client.cookies.get("safecity_lang") == "en"
    en = client.get("/console/login", headers={"Accept-Language": "zh-CN"})  # cookie wins
    assert "Staff sign-in" in en.text
    assert '<html lang="en">' in en.text
    assert "工作人员登录" not in en.text
    assert 'href="/console/lang/zh?next=/console/login"' in en.text


def test_language_switch_refuses_unknown_language_and_foreign_next(client: TestClient) -> None:
    response = client.get("/console/lang/fr?next=https://evil.example/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console"
    assert "safecity_lang" not in client.cookies


def test_default_language_comes_from_settings_then_accept_language(client: TestClient) -> None:
    assert "工作人员登录" in client.get("/console/login", headers={"Accept-Language": ""}).text
    english = client.get("/console/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert "Staff sign-in" in english.text


def test_dashboard_in_english_after_switch(client: TestClient, city: City, make_staff: Any) -> None:
    log_in(client, make_staff("admin", city.city, username="boss"))
    client.get("/console/lang/en?next=/console")
    html = client.get("/console").text
    assert "City overview" in html
    assert "Sensing &amp; alerts" in html
    assert html.count(">Coming<") == len(DOMAIN_KEYS) - sum(1 for d in pages.DOMAINS if d.href)
    assert 'data-lang="en"' in html


def test_static_mount_is_public_and_serves_vendor_files(app: Any, client: TestClient) -> None:
    mounts = [r for r in app.routes if isinstance(r, Mount) and r.path == "/console/static"]
    assert len(mounts) == 1
    assert getattr(mounts[0], PUBLIC_ATTR, False) is True
    for path, kind in [
        ("vendor/htmx/htmx.min.js", "javascript"),
        ("vendor/leaflet/leaflet.js", "javascript"),
        ("vendor/leaflet/leaflet.css", "css"),
        ("vendor/leaflet/images/layers.png", "image/png"),
        ("vendor/leaflet/LICENSE", ""),
        ("vendor/htmx/LICENSE", ""),
        ("console/map.js", "javascript"),
    ]:
        response = client.get(f"/console/static/{path}")
        assert response.status_code == 200, path
        assert kind in response.headers["content-type"], path
    assert client.get("/console/static/../pages.py").status_code == 404


def test_console_pages_declare_permissions() -> None:
    """Each console route carries require(...) (via console_require) or public."""
    from fastapi.routing import APIRoute

    from safecity.security.rbac import PERMISSION_ATTR

    routes = [r for r in pages.router.routes if isinstance(r, APIRoute)]
    assert len(routes) >= 7
    for route in routes:
        calls = [d.call for d in route.dependant.dependencies]
        declared = [c for c in calls if hasattr(c, PERMISSION_ATTR) or hasattr(c, PUBLIC_ATTR)]
        assert len(declared) == 1, f"{route.path} declares {len(declared)} permissions"
    staff_only = {
        r.path for r in routes if not hasattr(r.dependant.dependencies[0].call, PUBLIC_ATTR)
    }
    assert {"/console", "/console/partials/status", "/console/logout"} <= staff_only
