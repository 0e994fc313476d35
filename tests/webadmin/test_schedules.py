"""The schedule editor: admins create, change and delete scheduled reports in the ``report_schedules``
table, every change audited with before and after; other roles cannot; bad input is explained on the
form; an older installation's JSON schedule file is imported once when the page first opens."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry, ReportSchedule
from tests.webadmin.conftest import login_as, post_form, table_rows

FORM = {"name": "night-audit", "kind": "daily", "at": "03:15", "day_of_week": "0", "day_of_month": "1",
        "formats": ["csv", "pdf"], "recipients": "gm@hotel.example\nfinance@hotel.example", "enabled": "y"}


def schedules(db: Session) -> dict[str, ReportSchedule]:
    db.expire_all()
    return {row.name: row for row in db.scalars(select(ReportSchedule))}


def audit_entries(db: Session, prefix: str = "report_schedule.") -> list[AuditEntry]:
    return list(db.scalars(select(AuditEntry).where(AuditEntry.action.startswith(prefix)).order_by(AuditEntry.id)))


def test_the_list_shows_the_default_schedules(app: Flask, client: FlaskClient) -> None:
    login_as(app, client, "admin")
    rows = table_rows(client.get("/reports/schedules/").text, "schedules")
    assert [(r[0], r[2], r[3], r[5]) for r in rows] == [
        ("daily-summary", "Daily at 06:00", "CSV, Excel, PDF", "no recipients"),
        ("monthly-overview", "Monthly, day 1 at 07:00", "CSV, Excel, PDF", "no recipients"),
        ("weekly-costs", "Weekly, Monday at 06:30", "CSV, Excel, PDF", "no recipients")]


def test_an_admin_creates_a_schedule(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ada")
    response = post_form(client, "/reports/schedules/new", FORM)
    assert response.status_code == 302
    row = schedules(db)["night-audit"]
    assert (row.kind, row.hour, row.minute, row.formats, row.recipients, row.enabled, row.created_by) == (
        "daily", 3, 15, ["csv", "pdf"], ["gm@hotel.example", "finance@hotel.example"], True, "ada")
    (entry,) = audit_entries(db)
    assert (entry.action, entry.username, entry.target, entry.before) == (
        "report_schedule.create", "ada", f"report_schedule:{row.id}", None)
    assert entry.after["recipients"] == ["gm@hotel.example", "finance@hotel.example"]
    page = client.get("/reports/schedules/").text
    assert "Schedule night-audit created." in page
    assert ["night-audit", "Daily call summary (the day before)", "Daily at 03:15", "CSV, PDF",
            "gm@hotel.example, finance@hotel.example", "on"] in [r[:6] for r in table_rows(page, "schedules")]


def test_an_edit_is_audited_with_before_and_after(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ada")
    row_id = schedules(db)["weekly-costs"].id
    form_page = client.get(f"/reports/schedules/{row_id}").text
    assert 'value="weekly-costs"' in form_page and 'value="06:30"' in form_page
    edited = {**FORM, "name": "weekly-costs", "kind": "weekly", "at": "07:00", "day_of_week": "4",
              "formats": ["xlsx"], "recipients": "fin@hotel.example"}
    assert post_form(client, f"/reports/schedules/{row_id}", edited).status_code == 302
    row = schedules(db)["weekly-costs"]
    assert (row.day_of_week, row.hour, row.formats, row.recipients, row.updated_by) == (
        4, 7, ["xlsx"], ["fin@hotel.example"], "ada")
    (entry,) = audit_entries(db)
    assert entry.action == "report_schedule.update"
    assert (entry.before["day_of_week"], entry.before["recipients"]) == (0, [])
    assert (entry.after["day_of_week"], entry.after["recipients"]) == (4, ["fin@hotel.example"])
    # Saving the same values again changes nothing and writes nothing to the audit log.
    again = post_form(client, f"/reports/schedules/{row_id}", edited, follow_redirects=True)
    assert "Nothing changed." in again.text and len(audit_entries(db)) == 1


def test_delete_is_audited(app: Flask, client: FlaskClient, db: Session) -> None:
    login_as(app, client, "admin", "ada")
    row_id = schedules(db)["monthly-overview"].id
    assert post_form(client, f"/reports/schedules/{row_id}/delete").status_code == 302
    assert "monthly-overview" not in schedules(db)
    (entry,) = audit_entries(db)
    assert (entry.action, entry.before["name"], entry.after) == ("report_schedule.delete", "monthly-overview", None)
    assert post_form(client, f"/reports/schedules/{row_id}/delete").status_code == 404


@pytest.mark.parametrize(("change", "message"), [
    ({"recipients": "gm@hotel.example\nnot-an-address"}, "recipient &#39;not-an-address&#39; is not an email address"),
    ({"formats": []}, "Choose at least one attachment format."),
    ({"day_of_month": "31"}, "1 to 28, so that every month has the day."),
    ({"name": "has space"}, "use 1-32 letters, digits"),
    ({"name": "daily-summary"}, "There is a schedule named daily-summary already."),
    ({"at": "25:00"}, "Not a valid time value."),
])
def test_bad_input_is_explained_and_nothing_is_saved(app: Flask, client: FlaskClient, db: Session,
                                                     change: dict, message: str) -> None:
    login_as(app, client, "admin")
    response = post_form(client, "/reports/schedules/new", {**FORM, **change})
    assert response.status_code == 400
    assert message in response.text
    assert set(schedules(db)) == {"daily-summary", "weekly-costs", "monthly-overview"}
    assert audit_entries(db) == []


@pytest.mark.parametrize("role", ["viewer", "frontdesk"])
def test_only_admins_see_or_edit_schedules(app: Flask, client: FlaskClient, db: Session, role: str) -> None:
    login_as(app, client, role)
    row_id = schedules(db)["daily-summary"].id
    assert client.get("/reports/schedules/").status_code == 403
    assert post_form(client, "/reports/schedules/new", FORM).status_code == 403
    assert post_form(client, f"/reports/schedules/{row_id}", FORM).status_code == 403
    assert post_form(client, f"/reports/schedules/{row_id}/delete").status_code == 403
    assert set(schedules(db)) == {"daily-summary", "weekly-costs", "monthly-overview"}


def test_the_old_schedule_file_is_imported_once(app: Flask, client: FlaskClient, db: Session,
                                                migrated_url: str, tmp_path) -> None:
    from tests.helpers import make_config

    path = tmp_path / "report-schedules.json"
    path.write_text(json.dumps({"schedules": [{"name": "gm-daily", "kind": "daily", "hour": 5, "minute": 45,
                                               "recipients": ["gm@hotel.example"]}],
                                "last_runs": {"gm-daily": "2024-04-30T05:45:00+02:00"}}))
    app.extensions["appliance_config"] = make_config(migrated_url, reports={"schedule_file": str(path),
                                                                            "smtp": None})
    login_as(app, client, "admin")
    page = client.get("/reports/schedules/").text
    assert f"1 schedule(s) imported from {path}." in page
    assert "No mail server is configured" in page
    assert [r[0] for r in table_rows(page, "schedules")] == ["gm-daily"]   # the file replaced the defaults
    assert "imported" not in client.get("/reports/schedules/").text        # once
    assert len(audit_entries(db, "report_schedule.import")) == 1
