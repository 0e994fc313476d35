"""Web admin fixtures, flaskr style: ``app``, ``client``, ``auth``, over a database that ``alembic upgrade
head`` built (``migrated_url``), so every web test runs on SQLite and on PostgreSQL.

CSRF protection stays on in every test: the ``auth`` helpers read the token from the form like a browser.
Time comes from ``clock`` (the app's ``CLOCK``), so lockout and session expiry are tested without sleeping.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from appliance.db.models import Call, Posting, User
from webadmin import create_app
from webadmin.auth import hash_password

PASSWORD = "correct-horse-battery"
START = datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)


class FakeClock:
    """The app's ``CLOCK``: returns ``now`` until a test moves it on."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(migrated_url: str, clock: FakeClock) -> Iterator[Flask]:
    app = create_app({
        "TESTING": True,
        "DATABASE_URL": migrated_url,
        "SECRET_KEY": "test-secret-key",
        "SITE_TIMEZONE": "Europe/Berlin",
        "SESSION_MINUTES": 30,
        "CLOCK": clock,
        "PMS_LINK": "pms",
    })
    yield app
    app.extensions["appliance_db"].engine.dispose()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session of the test's own, for seeding rows and checking what the app wrote."""
    with app.extensions["appliance_db"].sessions() as session:
        yield session


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def make_user(app: Flask, username: str = "alice", password: str = PASSWORD, role: str = "viewer", *,
              must_change_password: bool = False, **fields: Any) -> int:
    """Insert a user straight into the database; returns its id."""
    with app.extensions["appliance_db"].sessions() as session:
        values: dict[str, Any] = dict(
            username=username, password_hash=hash_password(password), role=role,
            must_change_password=must_change_password, failed_logins=0, active=True,
            created_at=START - timedelta(days=1))
        values.update(fields)
        user = User(**values)
        session.add(user)
        session.commit()
        return user.id


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """The CSRF token of the form at ``path``, as a browser would find it."""
    response = client.get(path, follow_redirects=True)
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.text)
    assert match, f"no CSRF token in {path}"
    return match.group(1)


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, username: str = "alice", password: str = PASSWORD,
              next: str | None = None) -> TestResponse:
        token = csrf_token(self._client, "/auth/login")
        url = "/auth/login" + (f"?next={quote(next, safe='')}" if next else "")
        return self._client.post(url, data={"username": username, "password": password, "csrf_token": token})

    def logout(self) -> TestResponse:
        token = csrf_token(self._client, "/auth/password")
        return self._client.post("/auth/logout", data={"csrf_token": token})

    def change_password(self, current: str, new: str, confirm: str | None = None) -> TestResponse:
        token = csrf_token(self._client, "/auth/password")
        return self._client.post("/auth/password", data={
            "current_password": current, "new_password": new,
            "confirm": new if confirm is None else confirm, "csrf_token": token})


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def login_as(app: Flask, client: FlaskClient, role: str, username: str | None = None) -> str:
    """Create a user with ``role`` (named after it unless ``username``) and sign ``client`` in."""
    username = username or role
    make_user(app, username, role=role)
    response = AuthActions(client).login(username)
    assert response.status_code == 302, response.text
    return username


def post_form(client: FlaskClient, path: str, data: dict[str, Any] | None = None,
              **kwargs: Any) -> TestResponse:
    """POST ``data`` to ``path`` with the session's CSRF token, like a browser submitting a form."""
    token = csrf_token(client, "/auth/password")
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


# -- seeding calls and postings ---------------------------------------------------------------------------

_counter = iter(range(1, 10**9))


def make_call(session: Session, **fields: Any) -> Call:
    """A call row with sensible defaults; ``fields`` override them. Not committed."""
    n = next(_counter)
    values: dict[str, Any] = dict(
        link="pbx1", dedup_key=f"key-{n}", received_at=START, start=START, duration=125, ring=None,
        extension="2412", trunk="T1", dialled="0044207946000", caller="", direction="outgoing",
        answered=True, raw=b"raw record", category="guest", room="0412", call_class="international",
        destination="United Kingdom", amount=Decimal("3.40"), currency="USD", rating={},
        disposition="charge", reason="",
    )
    values.update(fields)
    call = Call(**values)
    session.add(call)
    session.flush()
    return call


def make_posting(session: Session, call: Call | None, **fields: Any) -> Posting:
    values: dict[str, Any] = dict(
        call_id=call.id if call else None, kind="charge", link="pms", room=call.room if call else "0412",
        amount=call.amount if call else Decimal("0"), currency="USD", state="open", attempts=0,
        created_at=START, updated_at=START, answer_code="", answer_text="",
    )
    values.update(fields)
    posting = Posting(**values)
    session.add(posting)
    session.flush()
    return posting


class _TableParser(HTMLParser):
    def __init__(self, table_id: str) -> None:
        super().__init__()
        self.table_id = table_id
        self.depth = 0
        self.in_body = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and dict(attrs).get("id") == self.table_id:
            self.depth = 1
        elif self.depth and tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append([])
        elif self.in_body and tag == "td":
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if self.depth and tag == "table":
            self.depth = 0
            self.in_body = False
        elif self.cell is not None and tag == "td":
            self.rows[-1].append(" ".join("".join(self.cell).split()))
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_rows(html: str, table_id: str) -> list[list[str]]:
    """The body rows of the table with ``id=table_id``, each a list of cell texts."""
    parser = _TableParser(table_id)
    parser.feed(html)
    return parser.rows


# -- a real server ---------------------------------------------------------------------------------------

class LiveServer:
    """The web admin served by appliance.net.web_server on a private reactor in a thread.

    A reactor instance of its own, never the global one: nothing else in the test process shares it,
    and it is stopped and joined at the end of the test.
    """

    def __init__(self, app: Flask) -> None:
        from twisted.internet.selectreactor import SelectReactor

        from appliance.net.web_server import make_web_service

        self.reactor = SelectReactor()
        self.service = make_web_service(app, "127.0.0.1", 0, self.reactor, threads=4)
        self.service.startService()
        self.url = f"http://127.0.0.1:{self.service.port.getHost().port}"
        self.thread = threading.Thread(target=self.reactor.run, kwargs={"installSignalHandlers": False},
                                       name="test-reactor", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        def shut_down() -> None:
            self.service.stopService().addBoth(lambda _: self.reactor.stop())

        self.reactor.callFromThread(shut_down)
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the test reactor did not stop"


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app)
    try:
        yield server
    finally:
        server.stop()
