"""Refunds on the web: a whole call, part of it, a custom amount to a room; who may; what is recorded."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.db.models import AuditEntry, Extension, Posting, Stay
from tests.webadmin.conftest import START, login_as, make_call, make_posting, post_form, table_rows
from tests.webadmin.test_report import records


def _posted(db: Session, amount: str = "3.40") -> tuple[int, int]:
    call = make_call(db, amount=Decimal(amount))
    charge = make_posting(db, call, state="ok", sequence=3, answer_code="OK", destination="United Kingdom")
    db.commit()
    return call.id, charge.id


def _postings(db: Session) -> list[Posting]:
    db.expire_all()
    return list(db.scalars(select(Posting).order_by(Posting.id)))


def test_front_desk_refunds_a_whole_call(app: Flask, client: FlaskClient, db: Session) -> None:
    call_id, charge_id = _posted(db)
    login_as(app, client, "frontdesk", "frida")
    response = post_form(client, f"/refunds/call/{call_id}", {"whole-reason": "guest never made this call"})
    assert response.status_code == 302 and response.headers["Location"] == f"/calls/{call_id}"
    charge, refund = _postings(db)
    assert charge.id == charge_id and charge.state == "refunded"
    assert (refund.kind, refund.refund_of_id, refund.amount, refund.state, refund.created_by,
            refund.room) == (
        "refund", charge_id, Decimal("3.40"), "open", "frida", "0412")
    audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "posting.refund")).one()
    assert (audit.username, audit.detail, audit.at) == ("frida", "guest never made this call", START)

    page = client.get(f"/calls/{call_id}").text
    assert "refunded: 3.40 USD back to room 0412" in page  # the flash
    banner = " ".join(page.split('id="refunded-banner">', 1)[1].split("</p>", 1)[0].split())
    assert banner == ("Refunded in full by <strong>frida</strong> on 2024-05-01 12:00:00: refunded by frida: "
                      "guest never made this call")
    assert "Refund the whole call" not in page  # never twice
    assert f"Refund posting {refund.id}" in page

    # The report shows the call as refunded, and the refund record with who made it.
    report = client.get(f"/report/?call_id={call_id}").text
    assert records(report) == [f"call-{call_id}", f"refund-{refund.id}"]
    call_row, refund_row = table_rows(report, "report")
    assert call_row[8] == "Refunded"
    assert refund_row[7:9] == ["-3.40 USD", "Open"] and "by frida" in refund_row[9]


def test_refunding_twice_is_refused(app: Flask, client: FlaskClient, db: Session) -> None:
    call_id, _ = _posted(db)
    login_as(app, client, "frontdesk")
    post_form(client, f"/refunds/call/{call_id}", {"whole-reason": "dispute"})
    again = post_form(client, f"/refunds/call/{call_id}", {"whole-reason": "dispute, again"})
    assert again.status_code == 400
    assert f"Call {call_id} has been refunded already." in again.text
    assert [p.kind for p in _postings(db)] == ["charge", "refund"]


def test_a_refund_needs_a_reason(app: Flask, client: FlaskClient, db: Session) -> None:
    call_id, _ = _posted(db)
    login_as(app, client, "frontdesk")
    response = post_form(client, f"/refunds/call/{call_id}", {"whole-reason": ""})
    assert response.status_code == 400 and "Please give a reason." in response.text
    assert _postings(db)[0].state == "ok"


def test_a_charge_not_yet_posted_cannot_be_refunded(app: Flask, client: FlaskClient, db: Session) -> None:
    call = make_call(db)
    make_posting(db, call, state="retry")
    db.commit()
    login_as(app, client, "frontdesk")
    response = post_form(client, f"/refunds/call/{call.id}", {"whole-reason": "x"})
    assert response.status_code == 400
    assert "Only a posted charge can be refunded; this one is retry." in response.text


def test_part_of_a_call_is_refunded_as_a_ref0_record(app: Flask, client: FlaskClient, db: Session) -> None:
    call_id, charge_id = _posted(db, "10.00")
    login_as(app, client, "frontdesk", "frida")
    too_much = post_form(client, f"/refunds/call/{call_id}/part",
                         {"part-amount": "10.01", "part-reason": "x", "part-destination": "REF0"})
    assert too_much.status_code == 400
    assert "The amount 10.01 is more than the 10.00 that can still be refunded." in too_much.text
    not_a_number = post_form(client, f"/refunds/call/{call_id}/part",
                             {"part-amount": "ten", "part-reason": "x"})
    assert not_a_number.status_code == 400 and "Not a valid decimal value." in not_a_number.text
    done = post_form(client, f"/refunds/call/{call_id}/part",
                     {"part-amount": "4.00", "part-reason": "hold music was broken", "part-destination": ""})
    assert done.status_code == 302
    charge, refund = _postings(db)
    assert (charge.state, refund.amount, refund.destination, refund.refund_of_id) == ("ok", Decimal("4.00"),
                                                                                      "REF0", charge_id)
    page = client.get(f"/calls/{call_id}").text
    assert "4.00 USD of 10.00 refunded so far (by frida)." in " ".join(page.split())
    assert "At most 6.00 USD." in page


def test_a_custom_refund_to_a_room(app: Flask, client: FlaskClient, db: Session) -> None:
    db.add(Extension(number="2101", category="guest", room="0101", description=""))
    db.add(Stay(room="0101", guest_id="G1", name="Guest", checked_in_at=START - timedelta(days=1)))
    db.commit()
    login_as(app, client, "frontdesk", "frida")
    assert client.get("/refunds/").status_code == 200
    unknown = post_form(client, "/refunds/", {"room": "101", "amount": "5", "reason": "x"})
    assert unknown.status_code == 400 and "Room 101 is not a room the appliance knows." in unknown.text
    zero = post_form(client, "/refunds/", {"room": "0101", "amount": "0", "reason": "x"})
    assert zero.status_code == 400 and "The amount must be more than zero." in zero.text
    done = post_form(client, "/refunds/", {"room": "0101", "amount": "25.50", "reason": "broken minibar",
                                           "destination": "REF0"})
    assert done.status_code == 302 and done.headers["Location"] == "/refunds/"
    [refund] = _postings(db)
    assert (refund.kind, refund.call_id, refund.room, refund.amount, refund.link, refund.destination) == (
        "refund", None, "0101", Decimal("25.50"), "pms", "REF0")
    rows = table_rows(client.get("/refunds/").text, "refunds")
    assert rows == [[str(refund.id), "2024-05-01 12:00:00", "frida", "0101", "-25.50 USD", "REF0", "Open", "",
                     "broken minibar", ""]]
    # The report lists it as a refund record.
    assert f"refund-{refund.id}" in records(client.get("/report/?record_type=refunds").text)


def test_custom_refunds_need_a_pms_link(app: Flask, client: FlaskClient, db: Session) -> None:
    db.add(Extension(number="2101", category="guest", room="0101", description=""))
    db.commit()
    app.config["PMS_LINK"] = ""
    login_as(app, client, "frontdesk")
    response = post_form(client, "/refunds/", {"room": "0101", "amount": "1", "reason": "x"})
    assert response.status_code == 400 and "No PMS link is configured" in response.text


@pytest.mark.parametrize("path, data", [
    ("/refunds/call/{call_id}", {"whole-reason": "x"}),
    ("/refunds/call/{call_id}/part", {"part-amount": "1", "part-reason": "x"}),
    ("/refunds/", {"room": "0412", "amount": "1", "reason": "x"}),
])
def test_a_viewer_cannot_refund(app: Flask, client: FlaskClient, db: Session, path: str,
                                data: dict[str, str]) -> None:
    call_id, _ = _posted(db)
    login_as(app, client, "viewer")
    response = post_form(client, path.format(call_id=call_id), data)
    assert response.status_code == 403
    assert client.get("/refunds/").status_code == 403
    assert [p.state for p in _postings(db)] == ["ok"]
    assert "Refund the whole call" not in client.get(f"/calls/{call_id}").text
