"""Settings (admins): extensions and rooms, the tariff, the links, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry, Extension, LinkStatus, Stay
from tests.helpers import make_config
from tests.webadmin.conftest import START, login_as, post_form, table_rows
from webadmin import create_app

SETTINGS_PAGES = ("/settings/", "/settings/extensions", "/settings/extensions/101", "/settings/extensions/new",
                  "/settings/extensions.csv", "/settings/rooms",
                  "/settings/tariffs", "/settings/links", "/settings/audit", "/settings/users/")


def _extensions(db: Session) -> None:
    db.add_all([
        Extension(number="101", category="guest", room="0101", description=""),
        Extension(number="2101", category="guest", room="0101", description="suite second line"),
        Extension(number="102", category="guest", room="0102", description=""),
        Extension(number="500", category="lobby", room="", description="lobby"),
        Stay(room="0101", guest_id="G1", name="Ms Example", checked_in_at=START - timedelta(days=1)),
        Stay(room="0999", guest_id="G2", name="Mr Nowhere", checked_in_at=START - timedelta(days=1)),
    ])
    db.commit()


@pytest.fixture
def configured_app(migrated_url: str) -> Iterator[Flask]:
    """The web admin started with a full appliance configuration (tests.helpers.make_config)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "k", "DATABASE_URL": migrated_url,
                      "SITE_TIMEZONE": "Europe/Berlin"}, config=make_config(migrated_url))
    yield app
    app.extensions["appliance_db"].engine.dispose()


def test_extensions_are_listed_as_the_table_that_routes_calls(app: Flask, client: FlaskClient,
                                                               db: Session) -> None:
    _extensions(db)
    login_as(app, client, "admin")
    page = client.get("/settings/").text
    assert "This table routes calls" in page
    assert [row[:4] for row in table_rows(page, "extensions")] == [
        ["101", "guest", "0101", ""], ["102", "guest", "0102", ""], ["500", "lobby", "", "lobby"],
        ["2101", "guest", "0101", "suite second line"]]
    assert [row[0] for row in table_rows(client.get("/settings/extensions?q=0101").text, "extensions")] == [
        "101", "2101"]


def test_editing_an_extension_is_audited(app: Flask, client: FlaskClient, db: Session) -> None:
    _extensions(db)
    login_as(app, client, "admin", "ivan")
    assert client.get("/settings/extensions/102").status_code == 200
    response = post_form(client, "/settings/extensions/102", {"category": "guest", "room": "0112",
                                                              "description": "room renumbered"})
    assert response.status_code == 302
    db.expire_all()
    extension = db.get(Extension, "102")
    assert (extension.room, extension.description) == ("0112", "room renumbered")
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "extension.edit")).one()
    assert (entry.username, entry.target) == ("ivan", "extension:102")
    assert entry.before == {"category": "guest", "room": "0102", "description": ""}
    assert entry.after == {"category": "guest", "room": "0112", "description": "room renumbered"}
    assert "routed this way within seconds" in client.get("/settings/").text


def test_extension_edits_are_checked(app: Flask, client: FlaskClient, db: Session) -> None:
    _extensions(db)
    login_as(app, client, "admin")
    no_room = post_form(client, "/settings/extensions/102", {"category": "guest", "room": ""})
    assert no_room.status_code == 400 and "A guest extension needs its room." in no_room.text
    bad_room = post_form(client, "/settings/extensions/102", {"category": "guest", "room": "01 02"})
    assert bad_room.status_code == 400
    bad_category = post_form(client, "/settings/extensions/102", {"category": "vip", "room": "0102"})
    assert bad_category.status_code == 400
    assert client.get("/settings/extensions/nope").status_code == 404
    db.expire_all()
    assert db.get(Extension, "102").room == "0102"
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "extension.edit")).all() == []


def test_adding_and_deleting_an_extension_is_audited(app: Flask, client: FlaskClient, db: Session) -> None:
    _extensions(db)
    login_as(app, client, "admin", "ivan")
    assert client.get("/settings/extensions/new").status_code == 200
    added = post_form(client, "/settings/extensions/new", {"number": "103", "category": "guest", "room": "0103"})
    assert added.status_code == 302
    again = post_form(client, "/settings/extensions/new", {"number": "103", "category": "guest", "room": "0104"})
    assert again.status_code == 400 and "exists already" in again.text
    letters = post_form(client, "/settings/extensions/new", {"number": "1O3", "category": "lobby"})
    assert letters.status_code == 400
    deleted = post_form(client, "/settings/extensions/500/delete")
    assert deleted.status_code == 302
    without_token = client.post("/settings/extensions/101/delete")
    assert without_token.status_code == 400
    db.expire_all()
    assert db.get(Extension, "103").room == "0103"
    assert db.get(Extension, "500") is None and db.get(Extension, "101") is not None
    entries = {e.action: e for e in db.scalars(select(AuditEntry).where(AuditEntry.action.startswith("extension.")))}
    assert entries["extension.add"].after == {"category": "guest", "room": "0103", "description": ""}
    assert entries["extension.delete"].before == {"category": "lobby", "room": "", "description": "lobby"}
    assert set(entries) == {"extension.add", "extension.delete"}


def test_extensions_export_as_csv_and_the_export_is_audited(app: Flask, client: FlaskClient, db: Session) -> None:
    _extensions(db)
    login_as(app, client, "admin", "ivan")
    response = client.get("/settings/extensions.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.text.splitlines() == [
        "extension,category,room,description", "101,guest,0101,", "102,guest,0102,", "500,lobby,,lobby",
        "2101,guest,0101,suite second line"]
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "extension.export")).one()
    assert (entry.username, entry.after) == ("ivan", {"rows": 4})


def test_rooms_show_extensions_and_occupancy_without_names(app: Flask, client: FlaskClient,
                                                           db: Session) -> None:
    _extensions(db)
    login_as(app, client, "admin")
    page = client.get("/settings/rooms").text
    assert table_rows(page, "rooms") == [["0101", "101, 2101", "since 2024-04-30 12:00:00"],
                                         ["0102", "102", "vacant"]]
    assert "no extension maps to: 0999." in " ".join(page.split())
    assert "Ms Example" not in page and "Mr Nowhere" not in page


def test_tariff_is_shown_in_words(configured_app: Flask) -> None:
    client = configured_app.test_client()
    login_as(configured_app, client, "admin")
    page = " ".join(client.get("/settings/tariffs").text.split())
    assert "Free numbers</dt><dd>+18005550100</dd>" in page
    assert ("plan <strong>staff</strong> for lobby extensions; plan <strong>main</strong> for every other "
            "call") in page
    assert "10 % of the carrier cost" in page
    assert "0.50 per call, 0 per started minute" in page
    assert "evening: mon-fri 19:00–07:00" in page
    assert ("<td>numbers starting +44</td><td>United Kingdom</td><td>0.50 to connect, then 1.20 a minute, "
            "first 60 s, then per started 6 s</td>") in page
    assert ("<td>national calls</td><td></td><td>0 to connect, then 0.25 a minute, per started 60 s "
            "(0.15 a minute in evening)</td>") in page
    assert 'id="plan-staff"' in page


def test_tariff_without_configuration(app: Flask, client: FlaskClient) -> None:
    login_as(app, client, "admin")
    assert "started without the appliance configuration" in client.get("/settings/tariffs").text


def test_links_combine_the_configuration_and_the_daemon_status(configured_app: Flask) -> None:
    with configured_app.extensions["appliance_db"].sessions() as db:
        db.add(LinkStatus(name="pms", kind="pms", state="up", since=START, detail="LS/LA done"))
        db.add(LinkStatus(name="oldpbx", kind="pbx", state="down", since=START, detail=""))
        db.commit()
    client = configured_app.test_client()
    login_as(configured_app, client, "admin")
    rows = table_rows(client.get("/settings/links").text, "links")
    assert rows == [
        ["pbx", "PBX", "testcsv", "listening on 127.0.0.1:1", "off", "never seen", "", ""],
        ["pms", "PMS", "fias", "connecting to 127.0.0.1:1", "off", "up", "2024-05-01 12:00:00", "LS/LA done"],
        ["oldpbx", "PBX", "not in the configuration", "down", "2024-05-01 12:00:00", ""],
    ]


def test_audit_log_lists_and_filters(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ivan")
    client.get("/report/export.csv").get_data()
    page = client.get("/settings/audit").text
    assert [row[1:4] for row in table_rows(page, "audit")] == [["ivan", "report.export", "report:calls"],
                                                               ["ivan", "login", "user:ivan"]]
    assert [row[2] for row in table_rows(client.get("/settings/audit?action=report.").text, "audit")] == [
        "report.export"]
    assert table_rows(client.get("/settings/audit?user=nobody").text, "audit") == [
        ["Nothing logged for this filter."]]


@pytest.mark.parametrize("role", ["viewer", "frontdesk"])
def test_only_admins_reach_settings_even_by_url(app: Flask, client: FlaskClient, db: Session,
                                                role: str) -> None:
    _extensions(db)
    login_as(app, client, role)
    for path in SETTINGS_PAGES:
        assert client.get(path).status_code == 403, path
    assert post_form(client, "/settings/extensions/102", {"category": "lobby", "room": ""}).status_code == 403
    db.expire_all()
    assert db.get(Extension, "102").category == "guest"
    assert "Settings" not in client.get("/").text.split("<main", 1)[0]  # not in the navigation
