"""Security acceptance checks of the web admin (issue 6), over every route the app has:

- every route without a session redirects to sign-in;
- a POST without a CSRF token is refused;
- each role reaches only its screens (by URL too): a viewer cannot refund, a front-desk user cannot reach
  settings, failed postings or users.

SQL injection through filters and exports is in test_report.py / test_export.py; passwords never in
clear in test_auth.py and test_users.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.db.models import Alert, AuditEntry, Extension, Posting
from tests.webadmin.conftest import START, csrf_token, login_as, make_call, make_posting, post_form

SAMPLE_ARGS = {"call_id": 1, "user_id": 1, "alert_id": 1, "number": "101", "what": "lock", "filename": "x",
               "key": "cost_by_trunk", "fmt": "csv", "schedule_id": 1, "kind": "pbx"}
PUBLIC = {"static", "auth.login"}
# What each role may open (GET); everything else is 403 for it.
VIEWER_PAGES = {"index", "dashboard.index", "calls.index", "report.index", "report.export_csv",
                "report.export_xlsx", "detail.show", "alerts.index", "auth.change_password", "reports.index",
                "reports.show", "reports.download"}
FRONTDESK_PAGES = VIEWER_PAGES | {"refunds.index"}


def _routes(app: Flask, method: str, *, setup: bool = False) -> list[tuple[str, str]]:
    """(endpoint, url) of every rule answering ``method``, with sample arguments filled in; the first-boot
    setup pages (closed for good once set up, test_every_setup_page_is_gone_once_set_up) only if ``setup``."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("setup.") != setup:
            continue
        if method in (rule.methods or set()) and rule.endpoint not in PUBLIC:
            url = rule.build({name: SAMPLE_ARGS[name] for name in rule.arguments}, append_unknown=False)[1]
            out.append((rule.endpoint, url))
    return sorted(set(out))


def _seed(db: Session) -> None:
    call = make_call(db)
    make_posting(db, call, state="ok")
    db.add(Alert(rule="burst", severity="warning", message="m", created_at=START))
    db.add(Extension(number="101", category="guest", room="0101", description=""))
    db.commit()


def test_the_app_has_the_screens_of_issue_6(app: Flask) -> None:
    endpoints = {endpoint for endpoint, _ in _routes(app, "GET") + _routes(app, "POST")}
    assert endpoints >= {"dashboard.index", "report.index", "report.export_csv", "report.export_xlsx",
                         "detail.show", "refunds.whole", "refunds.part", "refunds.index", "failed.index",
                         "alerts.index", "alerts.acknowledge", "settings.extensions", "settings.rooms",
                         "settings.tariffs", "settings.links", "settings.audit_log", "users.index"}


def test_every_route_without_a_session_redirects_to_sign_in(app: Flask, client: FlaskClient,
                                                            db: Session) -> None:
    _seed(db)
    gets = _routes(app, "GET")
    assert len(gets) >= 20
    for endpoint, url in gets:
        response = client.get(url)
        assert response.status_code == 302, endpoint
        assert response.headers["Location"].startswith("/auth/login"), endpoint
    token = csrf_token(client, "/auth/login")  # a real token: only the missing session stops these
    for endpoint, url in _routes(app, "POST"):
        if endpoint == "auth.logout":
            continue  # signing out without a session just shows the sign-in page
        response = client.post(url, data={"csrf_token": token})
        assert response.status_code == 302, endpoint
        assert response.headers["Location"].startswith("/auth/login"), endpoint


def test_a_post_without_csrf_token_is_refused_everywhere(app: Flask, client: FlaskClient,
                                                         db: Session) -> None:
    _seed(db)
    login_as(app, client, "admin")
    before = db.scalar(select(func.count()).select_from(AuditEntry))
    posts = _routes(app, "POST")
    assert len(posts) >= 12
    for endpoint, url in posts:
        response = client.post(url, data={"whole-reason": "x", "reason": "x", "note": "x", "posting": "1",
                                          "action": "write_off", "role": "viewer"})
        assert response.status_code == 400, endpoint
        assert "Form expired" in response.text, endpoint
        forged = client.post(url, data={"csrf_token": "forged", "note": "x", "posting": "1"})
        assert forged.status_code == 400, endpoint
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(AuditEntry)) == before
    assert [p.state for p in db.scalars(select(Posting))] == ["ok"]


def test_every_setup_page_is_gone_once_set_up(app: Flask, client: FlaskClient, db: Session) -> None:
    _seed(db)
    pages = _routes(app, "GET", setup=True) + _routes(app, "POST", setup=True)
    assert len(pages) >= 3
    for signed_in in (False, True):
        if signed_in:
            login_as(app, client, "admin")
        token = csrf_token(client, "/auth/login")
        for endpoint, url in pages:
            response = client.get(url) if (endpoint, url) in _routes(app, "GET", setup=True) \
                else client.post(url, data={"csrf_token": token})
            assert response.status_code == 404, (signed_in, endpoint)


@pytest.mark.parametrize("role, allowed", [("viewer", VIEWER_PAGES), ("frontdesk", FRONTDESK_PAGES),
                                           ("admin", None)])
def test_each_role_reaches_only_its_screens(app: Flask, client: FlaskClient, db: Session, role: str,
                                            allowed: set[str] | None) -> None:
    _seed(db)
    login_as(app, client, role)
    for endpoint, url in _routes(app, "GET"):
        if endpoint.startswith("auth."):
            continue
        status = client.get(url).status_code
        expected = 200 if allowed is None or endpoint in allowed else 403
        assert status == expected, f"{role} {endpoint} {url}"


@pytest.mark.parametrize("role", ["viewer", "frontdesk"])
def test_what_a_role_may_not_change(app: Flask, client: FlaskClient, db: Session, role: str) -> None:
    _seed(db)
    login_as(app, client, role)
    allowed = {"refunds.whole", "refunds.part", "refunds.index",
               "alerts.acknowledge"} if role == "frontdesk" \
        else set()
    for endpoint, url in _routes(app, "POST"):
        if endpoint.startswith("auth.") or endpoint in allowed:
            continue
        response = post_form(client, url, {"note": "x", "posting": "1", "action": "write_off",
                                           "role": "admin",
                                           "category": "lobby", "room": ""})
        assert response.status_code == 403, f"{role} {endpoint}"
    if role == "viewer":
        for url in ("/refunds/call/1", "/refunds/call/1/part", "/refunds/", "/alerts/1/acknowledge"):
            assert post_form(client, url, {"whole-reason": "x", "part-amount": "1", "part-reason": "x",
                                           "room": "0101", "amount": "1", "reason": "x"}).status_code == 403
    db.expire_all()
    assert [p.state for p in db.scalars(select(Posting))] == ["ok"]
    assert db.get(Extension, "101").category == "guest"
    assert all(a.acknowledged_at is None for a in db.scalars(select(Alert)))


def test_text_from_the_pbx_is_escaped_in_pages(app: Flask, client: FlaskClient, db: Session) -> None:
    call = make_call(db, account_code="<script>alert(1)</script>", amount=Decimal("1.00"))
    db.commit()
    login_as(app, client, "viewer")
    for url in (f"/calls/{call.id}", "/report/?start=&end="):
        html = client.get(url).text
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
