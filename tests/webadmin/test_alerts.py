"""Alerts: the list, acknowledging, the rules in words."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import Alert, AuditEntry
from tests.webadmin.conftest import START, login_as, make_call, post_form, table_rows
from webadmin.alerts import RULES


def _alerts(db: Session) -> tuple[int, int]:
    call = make_call(db)
    burst = Alert(rule="burst", severity="critical", subject="2412", message="25 calls in 3 minutes",
                  call_id=call.id, created_at=START - timedelta(minutes=5))
    silence = Alert(rule="pbx_silence", severity="warning", subject="pbx1", message="no record for 4 h",
                    created_at=START - timedelta(hours=1))
    old = Alert(rule="long_call", severity="info", subject="2101", message="3 h call",
                created_at=START - timedelta(days=2), acknowledged_at=START - timedelta(days=1),
                acknowledged_by="frida")
    db.add_all([burst, silence, old])
    db.commit()
    return burst.id, silence.id


def test_open_alerts_first_then_acknowledged_ones_and_the_rules(app: Flask, client: FlaskClient,
                                                                db: Session) -> None:
    burst_id, _ = _alerts(db)
    call_id = db.get(Alert, burst_id).call_id
    login_as(app, client, "viewer")
    page = client.get("/alerts/").text
    assert [row[:5] for row in table_rows(page, "open-alerts")] == [
        ["2024-05-01 11:55:00", "critical", f"25 calls in 3 minutes · call {call_id}", "2412", "burst"],
        ["2024-05-01 11:00:00", "warning", "no record for 4 h", "pbx1", "pbx_silence"],
    ]
    assert table_rows(page, "acknowledged-alerts") == [
        ["2024-04-29 12:00:00", "info", "3 h call", "2101", "long_call", "frida, 2024-04-30 12:00:00"]]
    assert RULES["pbx_silence"] in page
    assert "Acknowledge" not in " ".join(row[5] for row in table_rows(page, "open-alerts"))  # a viewer reads


def test_front_desk_acknowledges_an_alert(app: Flask, client: FlaskClient, db: Session) -> None:
    burst_id, silence_id = _alerts(db)
    login_as(app, client, "frontdesk", "frida")
    response = post_form(client, f"/alerts/{burst_id}/acknowledge")
    assert response.status_code == 302
    db.expire_all()
    burst = db.get(Alert, burst_id)
    assert (burst.acknowledged_at, burst.acknowledged_by) == (START, "frida")
    assert db.get(Alert, silence_id).acknowledged_at is None
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "alert.acknowledge")).one()
    assert (entry.username, entry.target, entry.after) == ("frida", f"alert:{burst_id}",
                                                           {"acknowledged": True, "rule": "burst"})
    page = client.get("/alerts/").text
    assert f"Alert {burst_id} acknowledged." in page
    assert len(table_rows(page, "open-alerts")) == 1
    again = post_form(client, f"/alerts/{burst_id}/acknowledge", follow_redirects=True)
    assert f"Alert {burst_id} was acknowledged already by frida." in again.text
    assert post_form(client, "/alerts/999999/acknowledge").status_code == 404


def test_a_viewer_cannot_acknowledge(app: Flask, client: FlaskClient, db: Session) -> None:
    burst_id, _ = _alerts(db)
    login_as(app, client, "viewer")
    assert post_form(client, f"/alerts/{burst_id}/acknowledge").status_code == 403
    db.expire_all()
    assert db.get(Alert, burst_id).acknowledged_at is None


def test_the_rules_are_shown_as_the_daemon_configures_them(app: Flask, client: FlaskClient,
                                                           migrated_url: str) -> None:
    from tests.helpers import make_config

    app.extensions["appliance_config"] = make_config(
        migrated_url, alerts={"rules": {"expensive_call": {"amount": "75.50"}, "burst": {"enabled": False}}})
    login_as(app, client, "viewer")
    page = client.get("/alerts/").text
    assert "A single call costs more than USD 75.50." in page
    assert "burst dialling" not in page.replace(RULES["burst"], "")  # a disabled rule is not described
