"""The alerts screen shows each alert's delivery log from ``alert_deliveries``: one line per attempt,
with the target, outcome, error and next attempt; alerts that went nowhere show no log."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from appliance.db.models import Alert, AlertDelivery
from tests.webadmin.conftest import START, login_as, table_rows


def test_each_alert_shows_its_delivery_attempts(app: Flask, client: FlaskClient, db: Session) -> None:
    burst = Alert(rule="burst", severity="critical", subject="2412", message="25 calls in 3 minutes",
                  created_at=START - timedelta(minutes=5))
    quiet = Alert(rule="long_call", severity="info", subject="2101", message="3 h call",
                  created_at=START - timedelta(minutes=4))
    db.add_all([burst, quiet])
    db.flush()
    t = START - timedelta(minutes=5)
    db.add_all([
        AlertDelivery(alert_id=burst.id, channel="soc", target="https://hooks.example/...", attempt=1, at=t,
                      outcome="retry", error="HTTP 503 Service Unavailable"),
        AlertDelivery(alert_id=burst.id, channel="soc", target="https://hooks.example/...", attempt=2,
                      at=t + timedelta(seconds=30), outcome="retry", error="HTTP 503 Service Unavailable",
                      next_attempt_at=t + timedelta(seconds=90)),
        AlertDelivery(alert_id=burst.id, channel="night-manager", target="nm@hotel.example", attempt=1, at=t,
                      outcome="sent"),
    ])
    db.commit()
    login_as(app, client, "viewer")
    page = client.get("/alerts/").text
    log = page[page.index(f'id="delivery-log-{burst.id}"'):]
    log = log[:log.index("</details>")]
    summary = " ".join(re.sub(r"<[^>]+>", " ", log[log.index("<summary>"):log.index("</summary>")]).split())
    assert summary == "Delivery: night-manager sent , soc retry"
    rows = table_rows(f'<table id="log">{log[log.index("<tbody>"):]}</table>', "log")
    assert rows == [
        ["night-manager", "nm@hotel.example", "1", "2024-05-01 11:55:00", "sent", "", ""],
        ["soc", "https://hooks.example/...", "1", "2024-05-01 11:55:00", "retry", "HTTP 503 Service Unavailable", ""],
        ["soc", "https://hooks.example/...", "2", "2024-05-01 11:55:30", "retry", "HTTP 503 Service Unavailable",
         "2024-05-01 11:56:30"]]
    assert f'id="delivery-log-{quiet.id}"' not in page
