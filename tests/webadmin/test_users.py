"""Users (admins): add, set role, reset password, lock and unlock, deactivate; never delete; audited."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from appliance.db.models import AuditEntry, User
from tests.webadmin.conftest import PASSWORD, AuthActions, login_as, make_user, post_form, table_rows
from webadmin.auth import MANUAL_LOCK

TEMPORARY = "temporary password 1"


def _user(db: Session, username: str) -> User:
    db.expire_all()
    return db.scalars(select(User).where(User.username == username)).one()


def _audit(db: Session) -> list[AuditEntry]:
    db.expire_all()
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action.not_in(("login", "logout")))
                           .order_by(AuditEntry.id)))


def test_add_a_user_who_must_choose_a_password(app: Flask, client: FlaskClient, db: Session,
                                               caplog: pytest.LogCaptureFixture) -> None:
    login_as(app, client, "admin", "ivan")
    with caplog.at_level(logging.DEBUG):
        response = post_form(client, "/settings/users/", {"username": "frida", "role": "frontdesk",
                                                          "password": TEMPORARY, "confirm": TEMPORARY})
    assert response.status_code == 302
    user = _user(db, "frida")
    assert (user.role, user.must_change_password, user.active) == ("frontdesk", True, True)
    # Never stored or logged in clear.
    assert TEMPORARY not in user.password_hash and user.password_hash.startswith("scrypt:")
    assert check_password_hash(user.password_hash, TEMPORARY)
    assert TEMPORARY not in caplog.text
    [entry] = _audit(db)
    assert (entry.username, entry.action, entry.target, entry.after) == (
        "ivan", "user.add", "user:frida", {"role": "frontdesk", "must_change_password": True})
    assert TEMPORARY not in str(entry.before) + str(entry.after) + entry.detail
    rows = table_rows(client.get("/settings/users/").text, "users")
    assert [row[:3] for row in rows] == [["frida", "frontdesk", "must choose a password"],
                                         ["ivan", "admin", "active"]]
    # The new user signs in and is sent to choose a password.
    other = app.test_client()
    assert AuthActions(other).login("frida", TEMPORARY).headers["Location"] == "/auth/password"


def test_adding_a_user_is_checked(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin")
    cases = [
        ({"username": "admin", "role": "viewer"}, "There is a user admin already."),
        ({"username": "bob", "role": "viewer", "password": "short", "confirm": "short"},
         "At least 10 characters."),
        ({"username": "bob", "role": "viewer", "confirm": "other password 1"}, "The two passwords differ."),
        ({"username": "bob smith", "role": "viewer"}, "Letters, digits"),
        ({"username": "bob", "role": "root"}, "Not a valid choice"),
        ({"username": "longusername", "role": "viewer", "password": "LongUsername",
          "confirm": "LongUsername"}, "The password must not be the username."),
    ]
    for data, message in cases:
        fields = {"password": TEMPORARY, "confirm": TEMPORARY, **data}
        response = post_form(client, "/settings/users/", fields)
        assert response.status_code == 400, data
        assert message in response.text, data
    assert db.scalars(select(User.username).order_by(User.username)).all() == ["admin"]


def test_set_role_and_reset_password(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ivan")
    user_id = make_user(app, "frida", role="viewer")
    frida = app.test_client()
    AuthActions(frida).login("frida")
    assert frida.get("/refunds/").status_code == 403

    assert post_form(client, f"/settings/users/{user_id}/role", {"role": "frontdesk"}).status_code == 302
    assert _user(db, "frida").role == "frontdesk"
    assert frida.get("/refunds/").status_code == 200  # the role is read on every request

    response = post_form(client, f"/settings/users/{user_id}/password",
                         {"password": TEMPORARY, "confirm": TEMPORARY})
    assert response.status_code == 302
    user = _user(db, "frida")
    assert user.must_change_password and check_password_hash(user.password_hash, TEMPORARY)
    assert frida.get("/").status_code == 302  # signed out by the new password
    assert [(e.action, e.before, e.after) for e in _audit(db)] == [
        ("user.role", {"role": "viewer"}, {"role": "frontdesk"}),
        ("password.reset", {"must_change_password": False}, {"must_change_password": True}),
    ]
    short = post_form(client, f"/settings/users/{user_id}/password", {"password": "x", "confirm": "x"})
    assert short.status_code == 400 and "At least 10 characters." in short.text


def test_lock_unlock_deactivate_activate(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ivan")
    user_id = make_user(app, "frida", role="frontdesk")
    frida = AuthActions(app.test_client())

    post_form(client, f"/settings/users/{user_id}/lock")
    assert _user(db, "frida").locked_until == MANUAL_LOCK
    refused = frida.login("frida")
    assert refused.status_code == 400
    assert "This account is locked. Ask an administrator to unlock it." in refused.text
    assert "locked by an administrator" in client.get(f"/settings/users/{user_id}").text

    post_form(client, f"/settings/users/{user_id}/unlock")
    assert _user(db, "frida").locked_until is None
    assert frida.login("frida").status_code == 302

    post_form(client, f"/settings/users/{user_id}/deactivate")
    assert _user(db, "frida").active is False
    assert frida.login("frida").status_code == 400
    post_form(client, f"/settings/users/{user_id}/activate")
    assert _user(db, "frida").active is True
    assert [e.action for e in _audit(db)] == ["account.lock", "account.unlock", "user.deactivate",
                                              "user.activate"]


def test_an_admin_cannot_lock_out_themselves(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ivan")
    me = _user(db, "ivan").id
    page = client.get(f"/settings/users/{me}").text
    assert "This is your own account" in page and "Deactivate ivan" not in page
    for path, data in ((f"/settings/users/{me}/role", {"role": "viewer"}), (f"/settings/users/{me}/lock", {}),
                       (f"/settings/users/{me}/deactivate", {})):
        assert post_form(client, path, data).status_code == 403
    user = _user(db, "ivan")
    assert (user.role, user.active, user.locked_until) == ("admin", True, None)


def test_users_are_never_deleted(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin")
    user_id = make_user(app, "frida")
    assert client.delete(f"/settings/users/{user_id}").status_code == 405
    assert post_form(client, f"/settings/users/{user_id}/delete").status_code == 404
    assert _user(db, "frida").active


def test_only_admins_manage_users(app: Flask, client: FlaskClient, db: Session) -> None:
    user_id = make_user(app, "frida", password=PASSWORD)
    login_as(app, client, "frontdesk", "desk")
    assert client.get("/settings/users/").status_code == 403
    assert post_form(client, f"/settings/users/{user_id}/role", {"role": "admin"}).status_code == 403
    assert post_form(client, "/settings/users/", {"username": "evil", "role": "admin", "password": TEMPORARY,
                                                  "confirm": TEMPORARY}).status_code == 403
    assert _user(db, "frida").role == "viewer"
    assert db.scalars(select(User).where(User.username == "evil")).first() is None
