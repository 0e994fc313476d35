"""The front desk's daily billing summary over the postings in conftest.py."""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal as D

from appliance.reports import frontdesk_daily
from tests.reports.conftest import DAY, TZ


def test_daily_summary(seeded) -> None:
    report = frontdesk_daily(seeded, DAY, TZ)
    assert report.rows == (
        # 101: charges 6.50 (ok) + 0.70 (refunded, but it was posted); the 0.70 refund posted
        ("101", 2, D("6.5000") + D("0.7000"), 1, D("0.7000"), D("6.5000")),
        # 102: the failed 1.00 charge never reached the folio
        ("102", 1, D("3.2500"), 0, D("0.0000"), D("3.2500")),
        # 104: a refund without a call, at 23:59:59, still on the 5th
        ("104", 0, D("0.0000"), 1, D("1.5000"), D("-1.5000")),
    )
    # 103's charge was answered at 00:30 on the 6th and its refund is still open: not on the 5th.
    assert report.totals == ("Total", 3, D("10.4500"), 2, D("2.2000"), D("8.2500"))


def test_night_audit_day_start(seeded) -> None:
    # With the business day running 04:00 to 04:00, 103's 00:30 charge belongs to the 5th.
    report = frontdesk_daily(seeded, DAY, TZ, day_starts=time(4))
    assert report.column("Room") == ["101", "102", "103", "104"]
    assert report.totals[-1] == D("18.2400")
    assert frontdesk_daily(seeded, date(2024, 3, 7), TZ).rows == ()
