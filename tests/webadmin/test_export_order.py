"""An export's rows come in the page's order: ``iter_report`` merges the branches itself for the sorts on
numbers and times, and must agree with the database's ORDER BY over the UNION, ties included."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session

from tests.webadmin.conftest import START, make_call, make_posting
from webadmin.report_query import MERGED_SORTS, SORTS, ReportFilter, iter_report, report_page

BERLIN = ZoneInfo("Europe/Berlin")


def _seed(db: Session) -> None:
    """Calls and refunds sharing start times, amounts and durations, so every tie rule is needed."""
    for n in range(12):
        at = START - timedelta(minutes=n // 3)  # three calls a minute
        call = make_call(db, start=at, amount=Decimal(n % 4), duration=60 * (n % 3), room=f"01{n % 5}",
                         extension=f"24{n % 4}")
        charge = make_posting(db, call, state=("ok", "failed", "refunded")[n % 3])
        if n % 3 == 2:  # a refund made at the same time as a call starts, of the same amount
            make_posting(db, call, kind="refund", refund_of_id=charge.id, amount=-call.amount + Decimal(1),
                         state="ok", created_at=at, updated_at=at)
    for n in range(3):
        make_call(db, start=START - timedelta(minutes=n), amount=Decimal(0), duration=0,
                  disposition="internal", direction="internal")
    db.commit()


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("state", ["", "ok", "internal", "refunded"])
def test_the_export_order_is_the_page_order(db: Session, sort: str, descending: bool, state: str) -> None:
    _seed(db)
    flt = ReportFilter(state=state)
    exported = [(row.record, row.id) for row in iter_report(db, flt, BERLIN, sort=sort, descending=descending,
                                                            batch=2)]
    page = [(row.record, row.id) for row in report_page(db, flt, BERLIN, sort=sort, descending=descending,
                                                        size=500)]
    assert exported == page
    assert len(exported) == len(set(exported)) > 0


def test_merged_sorts_are_the_number_and_time_columns() -> None:
    assert set(MERGED_SORTS) == {"start", "duration", "amount"}
