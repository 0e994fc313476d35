"""Nortel Meridian 1 / CS1000 CDR: the real S/N/E records (spaces squeezed), FCDR=NEW continuation lines
joined by the link, legs keyed for merging, records that are not calls, and round trips."""

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
from appliance.legs import merge_legs
from pbx_drivers.nortel_cs1000 import SPEC, NortelOptions, format_record, make_link, parse_record
from tests.pbx_drivers import SPLITS, call_fields, check_any_split, check_capture, load_capture, run_link

TORONTO = ZoneInfo("America/Toronto")
CONTEXT = ParseContext(tz=TORONTO, received_at=datetime(2003, 5, 9, 12, tzinfo=TORONTO))
OPTIONS = NortelOptions()
# FCDR=NEW: the record in its printed columns, and its continuation line with the calling line ID
NEW_FORMAT = (b"N 031 00 T010 012  2101     05/09 09:15 00:04:10\r\n"
              b"  & 000 0000 4165550123              000 00 0:12\r\n")


def test_spec_is_valid():
    assert validate_spec(SPEC) == []


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("nortel_cs1000"), split, trailing=b"N 029 00 2343 T01")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("nortel_cs1000"), cuts)


def test_continuation_lines_are_joined_and_give_the_caller_id():
    events = run_link(SPEC, OPTIONS, [NEW_FORMAT])
    assert [event.raw for event in events] == [NEW_FORMAT.replace(b"\r\n  &", b"\n  &").rstrip(b"\r\n")]
    call = parse_record(events[0].raw, OPTIONS, CONTEXT)
    assert (call.direction, call.extension, call.trunk, call.caller, call.duration) == (
        "incoming", "2101", "010-012", "4165550123", 250)


def test_the_link_releases_a_record_after_the_hold_time():
    link = make_link(NortelOptions(continuation_hold=1.0))
    link.connection_made(0.0)
    assert link.receive_data(NEW_FORMAT.splitlines()[0] + b"\r\n", 5.0) == []
    assert link.handle_timeout(6.0) == [RecordReceived(raw=NEW_FORMAT.splitlines()[0])]


def test_the_transferred_call_merges_into_one():
    calls = [parse_record(line, OPTIONS, CONTEXT) for line in load_capture("nortel_cs1000").data.splitlines()]
    start, end = calls[0], calls[2]
    assert (start.transfer, end.transfer, start.call_id) == ("continued", "transferred", "trunk:010-016")
    merged = merge_legs([end, start])
    assert (merged.extension, merged.duration, merged.transfer) == ("6101", 72, "T:2463")
    assert merged.start == start.start


@pytest.mark.parametrize("line, quarantine", [
    (b"A 030 00 2101 1234", False), (b"T 031 00 05/09 09:00", False), (b"D 032 00 2101", False),
    (b"Z 030 00 2343 T010 011 05/09 07:46 00:01:12", True), (b"N 027 00 2343 T010 011 05/09", True),
    (b"N 027 00 2343 T010 011 13/09 07:46 00:01:12", True), (b"  & 000 4165550123", True),
])
def test_non_calls_and_garbage(line, quarantine):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine is quarantine


def test_abandoned_and_internal_records():
    abandoned = parse_record(b"B 040 00 T010 016 6101 05/09 08:00 00:00:25", OPTIONS, CONTEXT)
    assert (abandoned.direction, abandoned.answered) == ("incoming", False)
    internal = parse_record(b"L 041 00 2101 2102 05/09 08:01 00:00:40", OPTIONS, CONTEXT)
    assert (internal.direction, internal.extension, internal.dialled) == ("internal", "2101", "2102")


@given(st.binary(max_size=150))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       time_is=st.sampled_from(["start", "end"]))
def test_format_then_parse_gives_the_call_back(seed, start, time_is):
    utc = ZoneInfo("UTC")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("2101", "2343"), ("010-016",
                                                                                            "010-011"))
    options = NortelOptions(time_is=time_is)
    events = run_link(SPEC, options, [format_record(call, options)])
    assert len(events) == 1
    received = ParseContext(tz=utc, received_at=call.start + timedelta(seconds=call.duration + 60))
    parsed = parse_record(events[0].raw, options, received)
    assert isinstance(parsed, CallRecord), parsed
    moment = call.start + timedelta(seconds=call.duration if time_is == "end" else 0)
    shift = timedelta(seconds=moment.second)  # the record prints hh:mm
    # account codes come in separate A/C records, not in the call record
    assert call_fields(parsed) == call_fields(replace(call, start=call.start - shift, ring=None,
                                                      account_code=""))
