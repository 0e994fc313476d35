"""Call detail: the raw record, classification and rating, the posting history with the PMS's answers."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from appliance.db.models import PostingEvent, Stay
from appliance.numbering import Classification
from appliance.rating import RatingInput, TariffBook, rate
from appliance.tariffs import Rate, TariffConfig
from tests.webadmin.conftest import START, login_as, make_call, make_posting, table_rows
from webadmin.queries import escape_raw

TARIFF = TariffConfig(markup_percent=Decimal("10"), surcharge_per_call=Decimal("0.50"), grace_seconds=10,
                      classes={"international": Rate(connect=Decimal("0.50"), per_minute=Decimal("1.20"),
                                                     increment=6)})


def _seed(db: Session) -> tuple[int, int]:
    classification = Classification(call_class="international", number="0044207946000",
                                    country="United Kingdom", e164="+44207946000")
    rating = rate(RatingInput(classification=classification, duration=125, start=START),
                  TariffBook(TARIFF, ZoneInfo("Europe/Berlin")))
    stay = Stay(room="0412", guest_id="G7", name="Mrs Ada Example", checked_in_at=START - timedelta(days=2))
    db.add(stay)
    db.flush()
    call = make_call(db, raw=b"\x0205/01 12:00 2412 0044207946000 <b>x</b>\r\n\xff", amount=rating.amount,
                     rating=rating.breakdown, stay_id=stay.id, account_code="ACME", pbx_call_id="77",
                     reason="")
    posting = make_posting(db, call, state="ok", sequence=17, answer_code="OK", answer_text="posted",
                           destination="United Kingdom")
    db.add_all([
        PostingEvent(posting_id=posting.id, at=START, from_state="", to_state="open",
                     cause="call rated and routed"),
        PostingEvent(posting_id=posting.id, at=START + timedelta(seconds=1), from_state="open",
                     to_state="open", cause="sent with P# 17", sequence=17),
        PostingEvent(posting_id=posting.id, at=START + timedelta(seconds=2), from_state="open", to_state="ok",
                     cause="OK: posted", sequence=17, raw="PA|RNO412|P#17|ASOK|"),
    ])
    db.commit()
    return call.id, posting.id


def test_detail_shows_the_raw_record_escaped(app: Flask, client: FlaskClient, db: Session) -> None:
    call_id, _ = _seed(db)
    login_as(app, client, "viewer")
    page = client.get(f"/calls/{call_id}")
    assert page.status_code == 200
    # Control bytes escaped, HTML escaped: nothing in a record can reach the page as markup.
    assert ('<pre class="raw" id="raw" aria-label="The record as the PBX sent it">'
            "\\x0205/01 12:00 2412 0044207946000 &lt;b&gt;x&lt;/b&gt;\\r\\n\\xff</pre>") in page.text
    assert "43 bytes;" in page.text


def test_detail_explains_the_rating(app: Flask, client: FlaskClient, db: Session) -> None:
    call_id, _ = _seed(db)
    login_as(app, client, "viewer")
    html = client.get(f"/calls/{call_id}").text
    breakdown = dict(tuple(row) for row in _th_rows(html))
    assert breakdown["Call class"] == "international"
    assert breakdown["Billed (s)"] == "126"  # 60 s, then 11 started increments of 6 s
    assert breakdown["Carrier cost"] == "3.020000"  # 0.50 + 126 s at 1.20/min
    assert breakdown["Markup (%)"] == "10"
    assert breakdown["Amount"] == "3.83"  # 3.02 + 10 % + 0.50, rounded up to the cent
    assert "Problem" not in breakdown  # empty values are left out
    explanation = html.split('id="explanation">', 1)[1].split("</pre>", 1)[0]
    assert explanation.startswith("international call to +44207946000 (United Kingdom), 125 s")
    assert explanation.rstrip().endswith("USD 3.83")
    assert table_rows(html, "pieces") == [["standard", "2024-05-01T12:00:00+02:00", "126", "1.20/min",
                                           "2.520000"]]
    flat = " ".join(html.split())
    assert "<dt>Billing account</dt><dd>ACME</dd>" in flat


def test_detail_shows_the_posting_history_with_the_pms_answers(app: Flask, client: FlaskClient,
                                                                db: Session) -> None:
    call_id, posting_id = _seed(db)
    login_as(app, client, "viewer")
    html = client.get(f"/calls/{call_id}").text
    assert f"Charge posting {posting_id}" in html
    rows = _history_rows(html)
    assert rows == [
        ["2024-05-01 12:00:00", "new → open", "call rated and routed", "daemon", "", ""],
        ["2024-05-01 12:00:01", "open → open", "sent with P# 17", "daemon", "17", ""],
        ["2024-05-01 12:00:02", "open → ok", "OK: posted", "daemon", "17", "PA|RNO412|P#17|ASOK|"],
    ]


def test_guest_name_and_refund_forms_are_for_the_front_desk(app: Flask, client: FlaskClient,
                                                            db: Session) -> None:
    call_id, _ = _seed(db)
    login_as(app, client, "viewer")
    html = client.get(f"/calls/{call_id}").text
    assert "Mrs Ada Example" not in html and "Refund the whole call" not in html
    desk = app.test_client()
    login_as(app, desk, "frontdesk")
    html = desk.get(f"/calls/{call_id}").text
    assert "<dt>Guest</dt><dd>Mrs Ada Example</dd>" in html
    assert "Refund the whole call" in html and "At most 3.83 USD." in html


def test_a_call_without_posting_says_why(app: Flask, client: FlaskClient, db: Session) -> None:
    call = make_call(db, disposition="excluded", reason="2 s is within the grace time of 10 s", rating={},
                     amount=Decimal("0"))
    db.commit()
    login_as(app, client, "frontdesk")
    html = client.get(f"/calls/{call.id}").text
    assert "This call has no posting: 2 s is within the grace time of 10 s." in html
    assert "Refund the whole call" not in html


def test_unknown_call_is_404(app: Flask, client: FlaskClient) -> None:
    login_as(app, client, "viewer")
    assert client.get("/calls/999999").status_code == 404


def test_escape_raw() -> None:
    assert escape_raw(b"A1 \t\\\x00\x7f\x80") == "A1 \\t\\\\\\x00\\x7f\\x80"
    assert escape_raw(b"") == ""


def _th_rows(html: str) -> list[list[str]]:
    import re

    table = html.split('id="breakdown"', 1)[1].split("</table>", 1)[0]
    return [[" ".join(m.group(1).split()), " ".join(m.group(2).split())]
            for m in re.finditer(r"<th scope=\"row\">(.*?)</th><td>(.*?)</td>", table)]


def _history_rows(html: str) -> list[list[str]]:
    section = html.split('class="history"', 1)[1]
    return table_rows('<table id="h" ' + section, "h")
