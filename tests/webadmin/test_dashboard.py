"""The dashboard: today's calls and charges in the site's time zone, postings by state, links, alerts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from appliance.db.models import Alert, LinkStatus
from tests.helpers import make_config
from tests.webadmin.conftest import START, login_as, make_call, make_posting, table_rows
from webadmin import create_app
from webadmin.dashboard import ago

UTC = timezone.utc


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return " ".join(match.group(1).split())


def _seed(db: Session) -> None:
    # The clock says 2024-05-01 10:00 UTC, 12:00 in Berlin (the site's zone): "today" is May 1 in Berlin.
    posted = make_call(db, start=START, amount=Decimal("3.40"))
    make_posting(db, posted, state="ok", created_at=START, updated_at=START)
    failed = make_call(db, start=datetime(2024, 4, 30, 22, 30, tzinfo=UTC),
                       amount=Decimal("0.50"))  # 00:30 local
    make_posting(db, failed, state="failed", created_at=START, updated_at=START)
    make_call(db, start=START, direction="incoming", caller="5551234", dialled="", amount=Decimal("0"),
              disposition="incoming")
    make_call(db, start=START, direction="internal", dialled="2101", amount=Decimal("0"),
              disposition="internal")
    # 21:30 UTC on April 30 is 23:30 in Berlin: yesterday.
    yesterday = make_call(db, start=datetime(2024, 4, 30, 21, 30, tzinfo=UTC), amount=Decimal("9.00"))
    make_posting(db, yesterday, state="retry", created_at=START - timedelta(days=1),
                 updated_at=START - timedelta(days=1))
    charge = make_posting(db, make_call(db, start=START - timedelta(days=3)), state="refunded",
                          created_at=START - timedelta(days=3), updated_at=START)
    make_posting(db, None, kind="refund", refund_of_id=charge.id, amount=Decimal("1.25"), state="open",
                 created_at=START, updated_at=START)
    db.add_all([
        LinkStatus(name="pbx1", kind="pbx", state="up", since=START - timedelta(hours=2), detail="",
                   last_record_at=START - timedelta(minutes=5)),
        LinkStatus(name="pms", kind="pms", state="down", since=START - timedelta(minutes=30),
                   detail="connection refused", last_answer_at=START - timedelta(hours=3)),
        Alert(rule="pbx_silence", severity="warning", message="no records", created_at=START),
        Alert(rule="burst", severity="critical", message="burst", created_at=START),
        Alert(rule="burst", severity="critical", message="old", created_at=START - timedelta(days=1),
              acknowledged_at=START, acknowledged_by="frida"),
    ])
    db.commit()


def test_dashboard_counts_today_in_the_site_time_zone(app: Flask, client: FlaskClient, db: Session) -> None:
    _seed(db)
    login_as(app, client, "viewer")
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    flat = " ".join(html.split())
    assert "Today is 2024-05-01 (Europe/Berlin)" in html
    assert _text(html, "calls-today") == "4"  # the 00:30 local call counts, the 23:30 one does not
    assert "2 outgoing · 1 incoming · 1 internal" in flat
    assert _text(html, "charged-today") == "3.90"
    assert "2 charges; 3.40 posted; 1 refunds of 1.25" in flat
    assert _text(html, "failed-count") == "1 failed"
    assert "1 open · 1 to retry" in flat
    assert _text(html, "open-alerts") == "2"
    # Postings made today, by state (the refunded charge was made three days ago).
    assert table_rows(html, "by-state") == [["Open", "1"], ["Retry", "0"], ["Posted", "1"], ["Failed", "1"],
                                            ["Excluded", "0"], ["Refunded", "0"]]


def test_dashboard_shows_link_status_since_when_and_last_traffic(app: Flask, client: FlaskClient,
                                                                  db: Session) -> None:
    _seed(db)
    login_as(app, client, "viewer")
    assert table_rows(client.get("/dashboard/").text, "links") == [
        ["pbx1", "PBX", "up", "2024-05-01 10:00:00 (2 h ago)", "2024-05-01 11:55:00 (5 min ago)", "", ""],
        ["pms", "PMS", "down", "2024-05-01 11:30:00 (30 min ago)", "", "2024-05-01 09:00:00 (3 h ago)",
         "connection refused"],
    ]


def test_dashboard_names_configured_links_the_daemon_never_reported(migrated_url: str) -> None:
    config = make_config(migrated_url)
    app = create_app({"TESTING": True, "SECRET_KEY": "k", "DATABASE_URL": migrated_url}, config=config)
    try:
        client = app.test_client()
        login_as(app, client, "viewer")
        rows = table_rows(client.get("/").text, "links")
        assert [row[:3] for row in rows] == [["pbx", "PBX", "never seen"], ["pms", "PMS", "never seen"]]
    finally:
        app.extensions["appliance_db"].engine.dispose()


def test_failed_link_is_offered_to_admins_only(app: Flask, client: FlaskClient, db: Session) -> None:
    _seed(db)
    login_as(app, client, "frontdesk")
    assert "review the failed ones" not in client.get("/").text
    other = app.test_client()
    login_as(app, other, "admin")
    assert "review the failed ones" in other.get("/").text


def test_empty_dashboard(app: Flask, client: FlaskClient) -> None:
    login_as(app, client, "viewer")
    html = client.get("/").text
    assert _text(html, "calls-today") == "0" and _text(html, "open-alerts") == "0"
    assert "No link has reported yet." in html


def test_ago_words() -> None:
    assert ago(None, START) == "never"
    assert ago(START - timedelta(seconds=2), START) == "just now"
    assert ago(START - timedelta(seconds=42), START) == "42 s ago"
    assert ago(START - timedelta(minutes=59), START) == "59 min ago"
    assert ago(START - timedelta(hours=47), START) == "47 h ago"
    assert ago(START - timedelta(days=200), START) == "200 days ago"
