"""Cost and hour-of-day reports over the hand-built day in conftest.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from sqlalchemy import func, select

from appliance.db.models import Call
from appliance.reports import (
    Period, calls_by_hour, cost_by_call_class, cost_by_country, cost_by_department, cost_by_extension,
    cost_by_trunk,
)
from tests.reports.conftest import DAY, TZ, add_call, local

PERIOD = Period.day(DAY, TZ)
# Outgoing calls a, b, c, e, f, h, i: 0.10 + 0.70 + 6.50 + 3.25 + 0 + 12.3456 + 9.99
TOTAL = D("32.8856")
SECONDS = 10 + 120 + 300 + 1800 + 600 + 3000 + 60  # = 5890


def table(report):
    return [row[:1] + row[-3:] for row in report.rows]


def test_by_department(seeded) -> None:
    report = cost_by_department(seeded, PERIOD)
    # 200 has a description; the others fall back to the category stored on the call.
    assert table(report) == [
        ("guest", 5, 10 + 120 + 300 + 1800 + 60, D("20.5400")),   # a b c e i
        ("Front office", 1, 3000, D("12.3456")),                  # h
        ("lobby", 1, 600, D("0.0000")),                           # f
    ]
    assert report.totals == ("Total", 7, SECONDS, TOTAL)


def test_by_extension(seeded) -> None:
    report = cost_by_extension(seeded, PERIOD)
    assert report.rows == (
        ("200", "admin", 1, 3000, D("12.3456")),
        ("103", "guest", 1, 60, D("9.9900")),
        ("101", "guest", 2, 420, D("7.2000")),
        ("102", "guest", 2, 1810, D("3.3500")),
        ("150", "lobby", 1, 600, D("0.0000")),
    )
    assert report.totals == ("Total", "", 7, SECONDS, TOTAL)


def test_by_trunk_class_and_country(seeded) -> None:
    assert table(cost_by_trunk(seeded, PERIOD)) == [
        ("T2", 4, 10 + 1800 + 3000 + 60, D("25.6856")),   # a e h i
        ("T1", 3, 120 + 300 + 600, D("7.2000")),          # b c f
    ]
    assert table(cost_by_call_class(seeded, PERIOD)) == [
        ("international", 2, 3300, D("18.8456")),
        ("premium", 1, 60, D("9.9900")),
        ("national", 2, 2400, D("3.2500")),
        ("local", 2, 130, D("0.8000")),
    ]
    report = cost_by_country(seeded, PERIOD)
    assert table(report) == [
        ("DE", 1, 3000, D("12.3456")),
        ("(unknown)", 1, 60, D("9.9900")),   # a satellite number has no country
        ("GB", 1, 300, D("6.5000")),
        ("US", 4, 10 + 120 + 1800 + 600, D("4.0500")),
    ]
    assert report.totals[-1] == TOTAL


def test_totals_equal_a_plain_sum(seeded) -> None:
    plain = seeded.scalar(select(func.sum(Call.amount)).where(
        Call.start >= PERIOD.utc_start, Call.start < PERIOD.utc_end, Call.direction == "outgoing"))
    for report in (cost_by_department, cost_by_extension, cost_by_trunk, cost_by_call_class, cost_by_country):
        assert report(seeded, PERIOD).totals[-1] == plain == TOTAL


def test_empty_period(seeded) -> None:
    report = cost_by_extension(seeded, Period.day(date(2020, 1, 1), TZ))
    assert report.rows == ()
    assert report.totals == ("Total", "", 0, 0, D("0.0000"))


def test_calls_by_hour(seeded) -> None:
    report = calls_by_hour(seeded, PERIOD)
    rows = {row[0]: row[1:] for row in report.rows}
    assert len(rows) == 24
    assert rows["00:00"] == (1, 10, 0, 0)
    assert rows["09:00"] == (2, 420, 0, 0)
    assert rows["10:00"] == (0, 0, 0, 0)          # the internal call is neither
    assert rows["14:00"] == (2, 2400, 1, 900)     # grouped by start hour
    assert rows["15:00"] == (1, 3000, 0, 0)
    assert rows["20:00"] == (1, 60, 0, 0)
    assert report.totals == ("Total", 7, SECONDS, 1, 900)


def test_calls_by_hour_across_daylight_saving(sessions) -> None:
    # 2024-03-10: New York goes from UTC-5 to UTC-4 at 02:00 local. A call at 01:30 EST and one at
    # 03:30 EDT are 1 h apart in UTC but local hours 1 and 3; a single UTC offset would put one wrong.
    with sessions.begin() as session:
        add_call(session, 1, local("2024-03-10 01:30:00"), 60)
        add_call(session, 2, local("2024-03-10 03:30:00"), 60, direction="incoming")
        add_call(session, 3, local("2024-03-10 23:30:00"), 60)
    with sessions() as session:
        report = calls_by_hour(session, Period.day(date(2024, 3, 10), TZ))
    rows = {row[0]: row[1:] for row in report.rows}
    assert rows["01:00"] == (1, 60, 0, 0)
    assert rows["03:00"] == (0, 0, 1, 60)
    assert rows["23:00"] == (1, 60, 0, 0)
    assert report.totals == ("Total", 2, 120, 1, 60)
