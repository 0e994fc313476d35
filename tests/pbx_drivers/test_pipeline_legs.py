"""Transfer legs through the pipeline: a call in several legs is stored once as charged, its earlier legs
as ``merged``, and posted once to the guest who dialled (``appliance.legs``; the pipeline change is
``Pipeline._join_legs``). Skipped until that change is applied to ``appliance/pipeline.py``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from appliance.db.models import Call, Posting
from appliance.db.session import make_engine, make_sessionmaker
from appliance.drivers import DriverSpec, FramedLink
from appliance.events import CallRecord, GuestCheckedIn
from appliance.framing import LineFramer
from appliance.occupancy import apply_guest_event
from appliance.pipeline import Pipeline
from tests.helpers import CsvOptions, make_config, parse_csv

T0 = datetime(2026, 3, 14, 15, 0, tzinfo=UTC)


def parse_with_legs(raw, options, context):
    """The test CSV plus ``call_id`` and ``transfer`` columns."""
    *base, call_id, transfer = raw.decode().split(",")
    call = parse_csv(",".join(base).encode(), options, context)
    if isinstance(call, CallRecord):
        return replace(call, call_id=call_id, transfer=transfer, raw=raw)
    return call


SPEC = DriverSpec(name="testcsv", kind="pbx", options=CsvOptions,
                  make_link=lambda options: FramedLink(LineFramer()), transports=frozenset({"tcp-server"}),
                  parse_record=parse_with_legs)


@pytest.fixture
def env(migrated_url):
    config = make_config(migrated_url)
    engine = make_engine(migrated_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        for room in ("101", "102"):
            apply_guest_event(session, GuestCheckedIn(room=room, guest_id=f"G{room}", name="Guest"),
                              T0 - timedelta(days=1))
    yield sessions, Pipeline(config, sessions, {"pbx": SPEC})
    engine.dispose()


def leg(extension: str, duration: int, call_id: str, transfer: str, start: datetime = T0) -> bytes:
    return f"{start.isoformat()},{duration},{extension},912125551234,outgoing,1,{call_id},{transfer}".encode()


@pytest.mark.parametrize("together", [True, False])
def test_two_legs_are_charged_once_to_the_guest_who_dialled(env, together):
    sessions, pipeline = env
    first, last = leg("101", 60, "77", "continued"), leg("102", 125, "77", "")
    if together:
        pipeline.ingest("pbx", [first, last], T0 + timedelta(minutes=5))
    else:
        pipeline.ingest("pbx", [first], T0 + timedelta(minutes=2))
        pipeline.ingest("pbx", [last], T0 + timedelta(minutes=5))
    with sessions() as session:
        calls = session.scalars(select(Call).order_by(Call.id)).all()
        postings = session.scalars(select(Posting)).all()
    assert [(c.disposition, c.extension) for c in calls] == [("merged", "101"), ("charge", "101")]
    assert calls[1].duration == 185 and calls[1].transfer == "T:102" and calls[1].pbx_call_id == "77"
    assert len(postings) == 1 and postings[0].room == "101"
    # a replay of both legs changes nothing
    result = pipeline.ingest("pbx", [first, last], T0 + timedelta(minutes=9))
    assert result.duplicates == 2


def test_records_without_legs_and_finals_without_held_legs_are_charged_alone(env):
    sessions, pipeline = env
    pipeline.ingest("pbx", [leg("101", 60, "", ""), leg("102", 60, "88", "")], T0 + timedelta(minutes=2))
    with sessions() as session:
        assert [c.disposition for c in session.scalars(select(Call))] == ["charge", "charge"]


def test_a_held_leg_a_day_older_is_not_joined(env):
    sessions, pipeline = env
    pipeline.ingest("pbx", [leg("101", 60, "99", "continued", T0 - timedelta(days=2))], T0)
    pipeline.ingest("pbx", [leg("102", 60, "99", "")], T0 + timedelta(minutes=2))
    with sessions() as session:
        assert [c.disposition for c in session.scalars(select(Call).order_by(Call.id))] == ["leg", "charge"]
