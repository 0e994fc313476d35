"""The call report: every filter, the site's time zone, paging, sorting, totals, bad input."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from appliance.db.models import Call, Posting
from tests.webadmin.conftest import START, login_as, make_call, make_posting, table_rows
from webadmin.report_query import STATES, ReportFilter, report_page, report_totals

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
ALL_TIME = "start=&end="


def seed(db: Session) -> dict[str, str]:
    """Calls of every kind and two refunds; returns name -> the row key the report page carries."""
    keys: dict[str, str] = {}

    def call(name: str, state: str | None, **fields: object) -> Call:
        row = make_call(db, **fields)
        if state:
            make_posting(db, row, state=state, created_at=row.start, updated_at=row.start)
        keys[name] = f"call-{row.id}"
        return row

    call("posted", "ok", start=START, account_code="ACME", dialled="0044207946000")
    call("failed", "failed", start=START - HOUR, extension="2101", room="0101", dialled="5551234",
         call_class="local", amount=Decimal("0.50"), pbx_call_id="PBX-77")
    call("internal", None, start=START - 2 * HOUR, dialled="2101", amount=Decimal("0"),
         disposition="internal")
    call("incoming", None, start=START - 3 * HOUR, direction="incoming", dialled="", caller="+15557654321",
         amount=Decimal("0"), disposition="incoming")
    call("free", None, start=START - 4 * HOUR, dialled="18005550100", amount=Decimal("0"),
         disposition="excluded")
    call("retry", "retry", start=START - 5 * HOUR, dialled="0033140000000", amount=Decimal("12.3456"))
    call("open", "open", start=START - 6 * HOUR, dialled="0033140000001")
    refunded = make_call(db, start=START - timedelta(days=1), amount=Decimal("7.00"), dialled="0049301234")
    keys["refunded"] = f"call-{refunded.id}"
    charge = make_posting(db, refunded, state="refunded")
    refund = make_posting(db, refunded, kind="refund", refund_of_id=charge.id, amount=Decimal("7.00"),
                          state="ok", created_by="frida", destination="Germany",
                          created_at=START - HOUR / 2, updated_at=START - HOUR / 4)
    keys["refund"] = f"refund-{refund.id}"
    custom = make_posting(db, None, kind="refund", room="0101", amount=Decimal("1.50"), state="open",
                          created_by="max", destination="REF0", created_at=START - HOUR / 6,
                          updated_at=START - HOUR / 6)
    keys["custom"] = f"refund-{custom.id}"
    call("old", "ok", start=START - timedelta(days=10), amount=Decimal("2.00"), dialled="0039061234")
    # Local midnight: 22:30 UTC on April 24 is 00:30 on April 25 in Berlin, 21:30 UTC is still April 24.
    call("after_midnight", "ok", start=datetime(2024, 4, 24, 22, 30, tzinfo=UTC), dialled="0031201234")
    call("before_midnight", "ok", start=datetime(2024, 4, 24, 21, 30, tzinfo=UTC), dialled="0032201234")
    db.commit()
    return keys


def records(html: str) -> list[str]:
    return re.findall(r'data-record="([a-z]+-\d+)"', html)


def shown(client: FlaskClient, query: str) -> set[str]:
    response = client.get(f"/report/?{query}")
    assert response.status_code == 200, response.text
    return set(records(response.text))


def test_a_fresh_report_shows_the_last_seven_days_newest_first(app: Flask, client: FlaskClient,
                                                               db: Session) -> None:
    keys = seed(db)
    login_as(app, client, "viewer")
    page = client.get("/report/")
    expected = ["posted", "custom", "refund", "failed", "internal", "incoming", "free", "retry", "open",
                "refunded", "after_midnight"]
    assert records(page.text) == [keys[name] for name in expected]
    assert 'value="2024-04-25"' in page.text and 'value="2024-05-01"' in page.text
    first, *_ = table_rows(page.text, "report")
    assert first == ["2024-05-01 12:00:00", "2412", "0412", "0044207946000", "2:05", "international", "ACME",
                     "3.40 USD", "Posted", f"call {keys['posted'][5:]}"]
    refund_row = table_rows(page.text, "report")[2]
    assert refund_row[7:9] == ["-7.00 USD", "Posted"]
    assert refund_row[9].startswith("refund Germany by frida call ")


@pytest.mark.parametrize("query, expected", [
    ("state=ok", {"posted", "refund", "old", "after_midnight", "before_midnight"}),
    ("state=open", {"open", "custom"}),
    ("state=retry", {"retry"}),
    ("state=failed", {"failed"}),
    ("state=excluded", {"free"}),
    ("state=refunded", {"refunded"}),
    ("state=internal", {"internal"}),
    ("state=incoming", {"incoming"}),
    ("record_type=refunds", {"refund", "custom"}),
    ("record_type=charges&state=ok", {"posted", "old", "after_midnight", "before_midnight"}),
    ("room=0101", {"failed", "custom"}),
    ("extension=2101", {"failed"}),
    ("caller=555765", {"incoming"}),
    ("caller=%2B1+555-765", {"incoming"}),
    ("called=0033", {"retry", "open"}),
    ("called=0049+30", {"refunded", "refund"}),
    ("account=ACME", {"posted"}),
    ("account=acme", set()),
    ("start=2024-04-25&end=2024-04-25", {"after_midnight"}),
    ("start=2024-04-24&end=2024-04-24", {"before_midnight"}),
    ("start=2024-05-01", {"posted", "failed", "internal", "incoming", "free", "retry", "open", "refund",
                          "custom"}),
    ("end=2024-04-21", {"old"}),
])
def test_each_filter(app: Flask, client: FlaskClient, db: Session, query: str, expected: set[str]) -> None:
    keys = seed(db)
    login_as(app, client, "viewer")
    base = "" if "start=" in query or "end=" in query else ALL_TIME + "&"
    assert shown(client, base + query) == {keys[name] for name in expected}


def test_call_id_ignores_every_other_filter(app: Flask, client: FlaskClient, db: Session) -> None:
    keys = seed(db)
    login_as(app, client, "viewer")
    call_id = keys["refunded"][5:]
    contradicting = "start=2030-01-01&end=2030-01-02&state=failed&record_type=charges&room=9999&account=X"
    assert shown(client, f"call_id={call_id}&{contradicting}") == {keys["refunded"], keys["refund"]}
    assert shown(client, f"call_id=PBX-77&{contradicting}") == {keys["failed"]}
    assert shown(client, "call_id=999999") == set()


def test_call_id_is_our_number_first_then_the_pbx_call_id(app: Flask, client: FlaskClient,
                                                          db: Session) -> None:
    ours = make_call(db, pbx_call_id="")
    clash = make_call(db, pbx_call_id=str(ours.id))  # its PBX call id happens to be our number of another
    pbx = make_call(db, pbx_call_id="990001")
    db.commit()
    login_as(app, client, "viewer")
    assert shown(client, f"call_id={ours.id}") == {f"call-{ours.id}"}
    assert shown(client, "call_id=990001") == {f"call-{pbx.id}"}
    assert shown(client, f"call_id=%2B{ours.id}") == set()  # "+1" is no number: a PBX call id, none has it
    assert clash.id != ours.id


def test_totals_are_for_the_whole_filter_not_the_page(app: Flask, client: FlaskClient, db: Session) -> None:
    seed(db)
    login_as(app, client, "viewer")
    html = " ".join(client.get(f"/report/?{ALL_TIME}&size=25").text.split())
    # 11 calls, 2 refunds; charged 3.40+0.50+12.3456+3.40+7.00+2.00+3.40+3.40 (the calls with an amount)
    assert "<strong>13</strong> records (11 calls, 2 refunds)" in html
    assert "charged <strong>35.4456</strong>" in html
    assert "refunded <strong>-8.50</strong>" in html
    assert 'net <strong id="net">26.9456</strong>' in html


def test_paging_and_sorting(app: Flask, client: FlaskClient, db: Session) -> None:
    for minute in range(60):
        make_call(db, start=START - timedelta(minutes=minute), amount=Decimal(minute % 7) + Decimal("0.10"),
                  extension=f"3{minute:03d}")
    db.commit()
    login_as(app, client, "viewer")
    first = client.get("/report/?size=25").text
    assert len(records(first)) == 25 and "Page 1 of 3" in first
    assert [row[1] for row in table_rows(first, "report")[:3]] == ["3000", "3001", "3002"]
    last = client.get("/report/?size=25&page=3").text
    assert [row[1] for row in table_rows(last, "report")] == [f"3{m:03d}" for m in range(50, 60)]
    assert client.get("/report/?size=25&page=99").text.count("Page 3 of 3") == 1
    seen = set()
    for page in (1, 2, 3):
        seen.update(records(client.get(f"/report/?size=25&page={page}&sort=amount&order=asc").text))
    assert len(seen) == 60  # ties are broken by id: no row on two pages, none missing

    by_amount = table_rows(client.get("/report/?size=100&sort=amount&order=asc").text, "report")
    amounts = [Decimal(row[7].split()[0]) for row in by_amount]
    assert amounts == sorted(amounts) and amounts[0] == Decimal("0.10") and amounts[-1] == Decimal("6.10")
    by_extension = table_rows(client.get("/report/?size=100&sort=extension&order=desc").text, "report")
    assert by_extension[0][1] == "3059"
    # The sort link flips the order of the current column.
    assert "sort=amount&amp;order=desc" in client.get("/report/?sort=amount&order=asc").text


def test_bad_filters_are_refused_with_a_message(app: Flask, client: FlaskClient) -> None:
    login_as(app, client, "viewer")
    response = client.get("/report/?state=bogus")
    assert response.status_code == 400 and "Not a valid choice" in response.text
    response = client.get("/report/?start=2024-05-02&end=2024-05-01")
    assert response.status_code == 400 and "The end date is before the start date." in response.text
    response = client.get("/report/?start=yesterday")
    assert response.status_code == 400 and "Not a valid date value." in response.text
    assert client.get("/report/?room=" + "9" * 17).status_code == 400


@pytest.mark.parametrize("query", [
    "room=0412'%20OR%20'1'%3D'1", "caller=%25", "called=_", "account=x'%3B%20DROP%20TABLE%20calls%3B--",
    "extension=1%20OR%201%3D1", "call_id=1%20OR%201%3D1", "sort=start%3B%20DROP%20TABLE%20calls",
    "order=asc%3B%20DELETE%20FROM%20postings",
])
def test_filters_are_not_open_to_sql_injection(app: Flask, client: FlaskClient, db: Session,
                                               query: str) -> None:
    keys = seed(db)
    login_as(app, client, "viewer")
    response = client.get(f"/report/?{ALL_TIME}&{query}")
    assert response.status_code == 200
    found = set(records(response.text))
    if query.startswith(("sort=", "order=")):
        assert found == set(keys.values())  # an unknown sort falls back to the start time
    else:
        assert found == set()  # the text was matched literally, and nothing matches it
    assert db.scalar(select(func.count()).select_from(Call)) == 11
    assert db.scalar(select(func.count()).select_from(Posting)) == 10


def test_query_functions_directly(db: Session) -> None:
    seed(db)
    refunds = ReportFilter(record_type="refunds")
    totals = report_totals(db, refunds, BERLIN)
    assert (totals.rows, totals.calls, totals.refunds) == (2, 0, 2)
    assert (totals.charged, totals.refunded, totals.net) == (Decimal("0"), Decimal("-8.50"), Decimal("-8.5"))
    rows = report_page(db, refunds, BERLIN, sort="amount", descending=False)
    assert [(row.record, row.amount, row.by, row.room) for row in rows] == [
        ("refund", Decimal("-7.00"), "frida", "0412"), ("refund", Decimal("-1.50"), "max", "0101")]
    assert rows[0].start == START - HOUR / 2 and rows[0].start.tzinfo is not None
    assert ReportFilter(call_id="5", room="x").describe() == {"call_id": "5"}
    with pytest.raises(ValueError):
        ReportFilter(state="'; DROP TABLE calls")


def test_state_filter_and_sort_follow_the_charge_posting(db: Session) -> None:
    """The report reads a call's state from ``calls.charge_state`` (kept by triggers, migration 0008): after
    the outbox's kind of Core UPDATE, and for a charged call whose disposition names another state, each
    state filter and the sort by state still agree with the postings themselves."""
    seed(db)
    odd = make_call(db, start=START - 7 * HOUR, disposition="excluded", amount=Decimal("1.25"))
    make_posting(db, odd, state="open")  # charged although its disposition says excluded: state is the charge's
    db.commit()
    failed = db.scalar(select(Posting.call_id).where(Posting.kind == "charge", Posting.state == "failed"))
    db.execute(update(Posting).where(Posting.call_id == failed, Posting.kind == "charge").values(state="ok"))
    db.commit()

    charge = aliased(Posting)
    truth_state = func.coalesce(charge.state, Call.disposition)
    truth = dict(db.execute(select(Call.id, truth_state).outerjoin(
        charge, (charge.call_id == Call.id) & (charge.kind == "charge"))).all())
    assert truth[odd.id] == "open" and truth[failed] == "ok"
    for state in STATES:
        flt = ReportFilter(state=state, record_type="charges")
        rows = report_page(db, flt, BERLIN, size=200)
        assert {row.id for row in rows} == {id_ for id_, value in truth.items() if value == state}
        assert {row.state for row in rows} <= {state}
        totals = report_totals(db, flt, BERLIN)
        expected = [id_ for id_, value in truth.items() if value == state]
        assert totals.calls == len(expected)
        assert totals.charged == sum((db.get(Call, id_).amount for id_ in expected), Decimal(0))
    for descending in (False, True):
        rows = report_page(db, ReportFilter(record_type="charges"), BERLIN, sort="state",
                           descending=descending, size=200)
        expected = sorted(truth.items(), key=lambda item: (item[1], item[0]), reverse=descending)
        assert [(row.id, row.state) for row in rows] == expected
