"""Sign-in, lockout, forced password change, CSRF, roles and session expiry."""

from __future__ import annotations

import logging
import os
import stat
from datetime import timedelta
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.config import ApplianceConfig, DatabaseConfig, SiteConfig, WebConfig
from appliance.db.models import AuditEntry, User
from tests.webadmin.conftest import PASSWORD, AuthActions, FakeClock, make_user
from webadmin import SECRET_KEY_FILE, create_app
from webadmin.auth import LOCKOUT, MAX_FAILED_LOGINS, role_required


def _user(db: Session, username: str = "alice") -> User:
    db.expire_all()
    user = db.scalars(select(User).where(User.username == username)).one()
    return user


def _actions(db: Session) -> list[tuple[str, str, str]]:
    db.expire_all()
    entries = db.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    return [(entry.username, entry.action, entry.detail) for entry in entries]


def test_login_page_has_labelled_fields_and_a_csrf_token(client: FlaskClient) -> None:
    response = client.get("/auth/login")
    assert response.status_code == 200
    assert '<label for="username">Username</label>' in response.text
    assert '<label for="password">Password</label>' in response.text
    assert 'name="csrf_token"' in response.text


def test_login_ok_records_it_and_shows_the_home_page(app: Flask, client: FlaskClient, auth: AuthActions,
                                                      db: Session, clock: FakeClock) -> None:
    make_user(app, "alice", role="frontdesk")
    response = auth.login()
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "alice" in home.text and "(frontdesk)" in home.text
    user = _user(db)
    assert user.last_login_at == clock.now
    assert user.failed_logins == 0
    assert ("alice", "login", "from 127.0.0.1") in _actions(db)


@pytest.mark.parametrize("username, password, reason", [
    ("alice", "wrong password!", "wrong password"),
    ("nobody", PASSWORD, "unknown user"),
])
def test_bad_login_is_refused_and_logged_without_the_password(
        app: Flask, client: FlaskClient, auth: AuthActions, db: Session, caplog: pytest.LogCaptureFixture,
        username: str, password: str, reason: str) -> None:
    make_user(app, "alice")
    with caplog.at_level(logging.WARNING, logger="webadmin.auth"):
        response = auth.login(username, password)
    assert response.status_code == 400
    assert "Wrong username or password." in response.text
    assert client.get("/").status_code == 302
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert reason in logged and repr(username) in logged
    assert password not in logged
    assert password not in " ".join(str(entry) for entry in _actions(db))


def test_inactive_user_cannot_sign_in(app: Flask, auth: AuthActions) -> None:
    make_user(app, "alice", active=False)
    assert auth.login().status_code == 400


def test_five_failures_lock_the_account_for_fifteen_minutes(
        app: Flask, client: FlaskClient, auth: AuthActions, db: Session, clock: FakeClock) -> None:
    make_user(app, "alice")
    for _ in range(MAX_FAILED_LOGINS - 1):
        auth.login(password="not the password")
    assert _user(db).locked_until is None
    auth.login(password="not the password")
    assert _user(db).locked_until == clock.now + LOCKOUT
    assert [a for _, a, _ in _actions(db)].count("account.locked") == 1

    # Even the right password is refused while locked.
    clock.advance(minutes=14)
    response = auth.login()
    assert response.status_code == 400
    assert "locked" in response.text
    assert client.get("/").status_code == 302

    clock.advance(minutes=1, seconds=1)
    assert auth.login().headers["Location"] == "/"
    user = _user(db)
    assert user.failed_logins == 0 and user.locked_until is None


def test_a_successful_login_resets_the_failure_count(app: Flask, auth: AuthActions, db: Session) -> None:
    make_user(app, "alice")
    for _ in range(MAX_FAILED_LOGINS - 1):
        auth.login(password="not the password")
    assert auth.login().status_code == 302
    auth.logout()
    for _ in range(MAX_FAILED_LOGINS - 1):
        auth.login(password="not the password")
    assert _user(db).locked_until is None


def test_first_sign_in_forces_a_password_change(
        app: Flask, client: FlaskClient, auth: AuthActions, db: Session) -> None:
    make_user(app, "alice", must_change_password=True)
    response = auth.login()
    assert response.headers["Location"] == "/auth/password"
    # Every other page sends the user back until it is done.
    assert client.get("/calls/").headers["Location"] == "/auth/password"

    problems = [
        (PASSWORD, "short", None, "At least 10 characters."),
        (PASSWORD, "Alice", None, "At least 10 characters."),
        (PASSWORD, "new-password-1", "new-password-2", "The two new passwords differ."),
        ("not my password", "new-password-1", None, "This is not your current password."),
        (PASSWORD, PASSWORD, None, "Choose a password different from the current one."),
    ]
    for current, new, confirm, message in problems:
        response = auth.change_password(current, new, confirm)
        assert response.status_code == 400
        assert message in response.text
    assert _user(db).must_change_password

    response = auth.change_password(PASSWORD, "a much better one")
    assert response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert not _user(db).must_change_password
    assert ("alice", "password.change", "first sign-in") in _actions(db)
    auth.logout()
    assert auth.login(password="a much better one").headers["Location"] == "/"


def test_password_equal_to_username_is_refused(app: Flask, auth: AuthActions) -> None:
    make_user(app, "longusername", must_change_password=True)
    auth.login("longusername")
    response = auth.change_password(PASSWORD, "LongUsername")
    assert "The password must not be the username." in response.text


def test_changing_the_password_signs_out_other_browsers(app: Flask, auth: AuthActions) -> None:
    make_user(app, "alice")
    other = app.test_client()
    AuthActions(other).login()
    assert other.get("/").status_code == 200
    auth.login()
    auth.change_password(PASSWORD, "a much better one")
    assert other.get("/").status_code == 302


def test_logout_is_a_post_and_is_audited(app: Flask, client: FlaskClient, auth: AuthActions,
                                         db: Session) -> None:
    make_user(app, "alice")
    auth.login()
    assert client.get("/auth/logout").status_code == 405
    response = auth.logout()
    assert response.headers["Location"] == "/auth/login"
    assert client.get("/").status_code == 302
    assert [a for _, a, _ in _actions(db)] == ["login", "logout"]


def test_csrf_rejects_a_post_without_token(app: Flask, client: FlaskClient, auth: AuthActions,
                                           db: Session) -> None:
    assert app.config.get("WTF_CSRF_ENABLED", True) is True
    make_user(app, "alice")
    response = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "Form expired" in response.text
    assert _actions(db) == []

    auth.login()
    response = client.post("/auth/logout", data={})
    assert response.status_code == 400
    assert client.get("/").status_code == 200  # still signed in
    response = client.post("/auth/password", data={
        "csrf_token": "forged", "current_password": PASSWORD, "new_password": "x" * 12, "confirm": "x" * 12})
    assert response.status_code == 400
    assert client.get("/").status_code == 200


@pytest.fixture
def guarded_app(app: Flask) -> Flask:
    @app.route("/test/frontdesk")
    @role_required("frontdesk")
    def frontdesk_only() -> str:
        return "front desk page"

    @app.route("/test/admin")
    @role_required("admin")
    def admin_only() -> str:
        return "admin page"

    return app


@pytest.mark.parametrize("role, frontdesk, admin", [
    ("viewer", 403, 403),
    ("frontdesk", 200, 403),
    ("admin", 200, 200),
])
def test_roles_are_enforced(guarded_app: Flask, client: FlaskClient, auth: AuthActions,
                            role: str, frontdesk: int, admin: int) -> None:
    make_user(guarded_app, "alice", role=role)
    auth.login()
    assert client.get("/test/frontdesk").status_code == frontdesk
    response = client.get("/test/admin")
    assert response.status_code == admin
    if admin == 403:
        assert "Your role does not allow this page." in response.text


def test_roles_require_sign_in(guarded_app: Flask, client: FlaskClient) -> None:
    response = client.get("/test/frontdesk")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


def test_role_required_refuses_unknown_roles() -> None:
    with pytest.raises(ValueError):
        role_required("superuser")


def test_session_expires_after_idle_minutes(app: Flask, client: FlaskClient, auth: AuthActions,
                                            db: Session, clock: FakeClock) -> None:
    make_user(app, "alice")
    auth.login()
    # Each request restarts the idle time.
    for _ in range(3):
        clock.advance(minutes=29)
        assert client.get("/").status_code == 200
    clock.advance(minutes=30, seconds=1)
    response = client.get("/calls/")
    assert response.status_code == 302
    assert unquote(response.headers["Location"]) == "/auth/login?next=/calls/"
    assert "Your session expired" in client.get("/auth/login").text
    assert client.get("/").status_code == 302
    assert ("alice", "logout", "session expired") in _actions(db)
    assert app.permanent_session_lifetime == timedelta(minutes=30)


def test_login_follows_next_but_only_within_the_site(app: Flask, client: FlaskClient,
                                                     auth: AuthActions) -> None:
    make_user(app, "alice")
    response = client.get("/calls/")
    assert unquote(response.headers["Location"]) == "/auth/login?next=/calls/"
    assert auth.login(next="/calls/").headers["Location"] == "/calls/"
    auth.logout()
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert auth.login(next=target).headers["Location"] == "/"
        auth.logout()


def test_security_headers_and_cookie_flags(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    response = client.get("/auth/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    # Everything is local: no stylesheet, script or font from another origin.
    for remote in ("http://", "https://", 'href="//', 'src="//'):
        assert remote not in response.text
    make_user(app, "alice")
    cookie = auth.login().headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/static/style.css").status_code == 200


def test_secret_key_is_generated_once_and_kept_next_to_the_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'appliance.db'}"
    first = create_app({"DATABASE_URL": url})
    path = tmp_path / "data" / SECRET_KEY_FILE
    assert path.exists()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    second = create_app({"DATABASE_URL": url})
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert len(first.config["SECRET_KEY"]) >= 32
    for app in (first, second):
        app.extensions["appliance_db"].engine.dispose()


def test_settings_come_from_the_appliance_config(tmp_path) -> None:
    config = ApplianceConfig(
        site=SiteConfig(name="Hotel Example", timezone="Asia/Tokyo", currency="JPY", country="JP"),
        database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'a.db'}"),
        web=WebConfig(secret_key="from-the-yaml", session_minutes=12),
    )
    app = create_app(config=config)
    assert app.config["SECRET_KEY"] == "from-the-yaml"
    assert app.config["DATABASE_URL"] == config.database.url
    assert app.config["SITE_TIMEZONE"] == "Asia/Tokyo"
    assert app.permanent_session_lifetime == timedelta(minutes=12)
    assert not (tmp_path / SECRET_KEY_FILE).exists()
    with app.test_client() as client:
        assert "Hotel Example" in client.get("/auth/login").text
    app.extensions["appliance_db"].engine.dispose()
