"""NEC SV8100/SL printer report: page headers, NEXT continuation lines joined by the link (and released
by its timer), the date column option, classes, quarantine reasons and round trips."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.events import CallRecord, Ignored, RecordReceived
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.nec_sv8100 import SPEC, NecSv8100Options, format_record, make_link, parse_record
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture

NEW_YORK = ZoneInfo("America/New_York")
CONTEXT = ParseContext(tz=NEW_YORK, received_at=datetime(2025, 3, 14, 12, 0, tzinfo=NEW_YORK))
OPTIONS = NecSv8100Options()
POT = b"POT  10:15 001        00:02:05 2101       2125550134           1234"
NEXT = b"NEXT                                      SMITH JOHN"


def test_spec_is_valid_and_registered():
    assert validate_spec(SPEC) == [] and REGISTRY.get("pbx", "nec_sv8100") is SPEC


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("nec_sv8100"), split, trailing=b"POT  11:1")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=1200), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("nec_sv8100"), cuts)


def test_next_line_is_joined_to_its_record_and_released_by_the_next_record():
    link = make_link(OPTIONS)
    link.connection_made(0.0)
    assert link.receive_data(POT + b"\r\n", 1.0) == []  # held: a NEXT line may follow
    assert link.deadline() == 3.0
    assert link.receive_data(NEXT + b"\r\n", 1.5) == []
    events = link.receive_data(POT + b"\r\n", 2.0)
    assert events == [RecordReceived(raw=POT + b"\n" + NEXT)]
    call = parse_record(events[0].raw, OPTIONS, CONTEXT)
    assert call.raw == POT + b"\n" + NEXT and call.extension == "2101"


def test_a_held_record_is_released_when_the_pbx_goes_quiet():
    link = make_link(NecSv8100Options(next_hold=2.0))
    link.connection_made(0.0)
    link.receive_data(POT + b"\r\n", 10.0)
    assert link.handle_timeout(11.0) == []
    assert link.handle_timeout(12.0) == [RecordReceived(raw=POT)]
    assert link.deadline() is None


def test_date_column_layout_found_by_shape():
    line = b"POT  23:59 12/31 001  00:00:45 2101       2125550199"
    new_year = ParseContext(tz=NEW_YORK, received_at=datetime(2025, 1, 1, 0, 5, tzinfo=NEW_YORK))
    call = parse_record(line, OPTIONS, new_year)
    assert (call.start, call.trunk, call.duration) == (datetime(2024, 12, 31, 23, 59, tzinfo=NEW_YORK),
                                                       "001", 45)


def test_no_date_column_takes_the_day_it_arrived():
    just_after_midnight = ParseContext(tz=NEW_YORK, received_at=datetime(2025, 3, 15, 0, 1, tzinfo=NEW_YORK))
    call = parse_record(POT.replace(b"10:15", b"23:58"), OPTIONS, just_after_midnight)
    assert call.start == datetime(2025, 3, 14, 23, 58, tzinfo=NEW_YORK)


def test_transferred_direction_option():
    line = b"PTRS 10:45 003        00:03:10 2103       2125550111"
    assert parse_record(line, OPTIONS, CONTEXT).direction == "incoming"
    out = parse_record(line, NecSv8100Options(transferred_as="outgoing"), CONTEXT)
    assert (out.direction, out.dialled, out.transfer) == ("outgoing", "2125550111", "PTRS")


@pytest.mark.parametrize("line, quarantine", [
    (b" " * 60 + b"03/14/2025 PAGE 002", False), (b"CLASS TIME    LINE    DURATION", False),
    (b"ALB  10:15 001", False), (b"BRD  10:50 001        00:00:00 2104       011441234567", False),
    (b"OUTGOING CALL/COST SUMMARY", False), (b"BFL  10:15", True), (NEXT, True),
    (b"XXX  10:15 001        00:02:05 2101       2125550134", True),
    (POT.replace(b"2125550134", b"21255ABC34"), True), (POT.replace(b"10:15", b"25:15"), True),
])
def test_non_calls_and_garbage(line, quarantine):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine is quarantine


@given(st.binary(max_size=120))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       date_column=st.booleans())
def test_format_then_parse_gives_the_call_back(seed, start, date_column):
    utc = ZoneInfo("UTC")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("2101", "2102"), ("001", "002"))
    options = NecSv8100Options(date_column=date_column)
    raw = format_record(call, options)
    parsed = parse_record(raw.rstrip(b"\r\n"), options,
                          ParseContext(tz=utc,
                                       received_at=call.start + timedelta(seconds=call.duration + 60)))
    assert isinstance(parsed, CallRecord), (raw, parsed)
    # minutes only; no ring time; an unanswered call prints NO ANSWER instead of an account code
    expected = replace(call, start=call.start.replace(second=0), ring=None,
                       account_code=call.account_code if call.answered else "")
    assert call_fields(parsed) == call_fields(expected)
