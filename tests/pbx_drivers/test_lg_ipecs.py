"""LG-Ericsson iPECS / Vodavi: the constructed capture (record numbers, call type letters, two-line
incoming records joined by the link), day/month order, quarantine reasons and round trips."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.events import CallRecord, Ignored
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.lg_ipecs import SPEC, IpecsOptions, format_record, parse_record
from tests.pbx_drivers import SPLITS, call_fields, check_any_split, check_capture, load_capture, run_link

LONDON = ZoneInfo("Europe/London")
CONTEXT = ParseContext(tz=LONDON, received_at=datetime(2025, 3, 14, 12, tzinfo=LONDON))
OPTIONS = IpecsOptions()


def test_spec_is_valid():
    assert validate_spec(SPEC) == []


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("lg_ipecs"), split, trailing=b"0007 107  001 00:0")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=900), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("lg_ipecs"), cuts)


def test_the_caller_on_a_second_line_is_joined_to_its_record():
    raws = [event.raw for event in run_link(SPEC, OPTIONS, [load_capture("lg_ipecs").data])
            if hasattr(event, "raw") and event.raw.startswith(b"0003")]
    assert raws[0].count(b"\n") == 1 and raws[0].endswith(b"<6135550123>")


def test_no_record_number_and_day_month_dates():
    line = b"101  001 05:00 14/03 10:23 O2125550134 $0.50"
    call = parse_record(line, IpecsOptions(date_order="dmy"), CONTEXT)
    assert (call.start, call.duration, call.extension) == (datetime(2025, 3, 14, 10, 23, tzinfo=LONDON),
                                                           300, "101")


@pytest.mark.parametrize("line, quarantine", [
    (b" NO  STA  CO  TIME      START           NUM I", False), (b"---- ---- ---", False),
    (b"0001 101  001 00:02:35  13/14 10:23:45  O2125550134", True),
    (b"0001 101  001 00:02:35  03/14 10:23:45  X2125550134", True),
    (b"garbage", True),
])
def test_headers_and_garbage(line, quarantine):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine is quarantine


@given(st.binary(max_size=150))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       second_line=st.booleans(), record_number=st.booleans())
def test_format_then_parse_gives_the_call_back(seed, start, second_line, record_number):
    utc = ZoneInfo("UTC")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("101", "102"), ("001", "002"))
    options = IpecsOptions(caller_on_second_line=second_line, record_number=record_number)
    raw = format_record(call, options)
    if call.direction == "internal":
        assert raw == b""
        return
    events = run_link(SPEC, options, [raw])
    assert len(events) == 1
    parsed = parse_record(events[0].raw, options, ParseContext(tz=utc, received_at=call.start))
    assert isinstance(parsed, CallRecord), (raw, parsed)
    ring = call.ring if call.direction == "incoming" and not call.answered else None
    assert call_fields(parsed) == call_fields(replace(call, ring=ring))
