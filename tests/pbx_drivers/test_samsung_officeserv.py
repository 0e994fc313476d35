"""Samsung OfficeServ: NUL-terminated records and form-feed page headers through SamsungLink (whole, byte
by byte, any split), December -> January, type flags, group events and round trips."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.events import CallRecord, Ignored, LinkDown, RecordReceived
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.samsung_officeserv import SPEC, SamsungLink, SamsungOptions, format_record, parse_record
from tests.pbx_drivers import SPLITS, call_fields, check_any_split, check_capture, load_capture, run_link

SEOUL = ZoneInfo("Asia/Seoul")
CONTEXT = ParseContext(tz=SEOUL, received_at=datetime(2025, 1, 1, 0, 15, tzinfo=SEOUL))
OPTIONS = SamsungOptions()


def test_spec_is_valid():
    assert validate_spec(SPEC) == [] and SPEC.default_port == 5100


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("samsung_officeserv"), split, trailing=b"  000106 206          01/01 00:1")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=1400), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("samsung_officeserv"), cuts)


def test_page_headers_are_ignored_without_quarantine():
    events = run_link(SPEC, OPTIONS, [load_capture("samsung_officeserv").data])
    headers = [event for event in events if isinstance(event, Ignored)]
    assert len(headers) == 6 and all(not event.quarantine for event in headers)
    assert all(event.reason == "page header" for event in headers)


def test_records_end_at_nul_and_the_link_reports_the_close():
    link = SamsungLink(OPTIONS)
    link.connection_made(0.0)
    assert link.receive_data(b"first\x00sec", 1.0) == [RecordReceived(raw=b"first")]
    assert link.connection_lost(2.0) == [RecordReceived(raw=b"sec"), LinkDown(reason="connection closed")]


def test_types_and_events():
    base = list(" " * 151)
    base[2:8], base[9:12], base[26:40], base[41:49] = "000001", "201", "03/14 10:00:00", "00:01:00"
    line = "".join(base)

    def with_type(kind: str, digits: str) -> bytes:
        return (line[:50] + kind.ljust(2) + " " + digits.ljust(18) + line[71:]).encode()

    assert parse_record(with_type("T", "2101"), OPTIONS, CONTEXT).direction == "internal"
    transferred = parse_record(with_type("TT", "2125550134"), OPTIONS, CONTEXT)
    assert (transferred.direction, transferred.transfer) == ("outgoing", "TT")
    assert parse_record(with_type("DND", ""), OPTIONS, CONTEXT).quarantine  # not a type
    event = parse_record(with_type("O", "OUT GROUP 500"), OPTIONS, CONTEXT)
    assert isinstance(event, Ignored) and not event.quarantine


def record(**fields: str) -> bytes:
    """A record put together from the module's slices."""
    from pbx_drivers.samsung_officeserv import SLICES

    line = [" "] * 151
    for name, text in fields.items():
        a, b = SLICES[name]
        line[a:b] = text.ljust(b - a)
    return "".join(line).rstrip().encode()


GOOD = {"sequence": "000001", "extension": "201", "month": "03", "day_time": "/14 10:00:00",
        "duration": "00:01:00", "type": "O", "dialled": "2125550134"}


def test_a_record_built_from_the_slices_parses():
    call = parse_record(record(**GOOD), OPTIONS, CONTEXT)
    assert (call.start, call.dialled, call.duration) == (datetime(2024, 3, 14, 10, tzinfo=SEOUL),
                                                         "2125550134", 60)


@pytest.mark.parametrize("line, reason", [
    (record(**{**GOOD, "month": "13"}), "calendar date"),
    (record(**{**GOOD, "day_time": "/14 10-00-00"}), "MM/DD hh:mm:ss"),
    (record(**{**GOOD, "dialled": "2125A50134"}), "not a number"),
    (b"garbage", "not a Samsung SMDR record"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=200))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       transfer=st.sampled_from(["", "OT", "IT"]))
def test_format_then_parse_gives_the_call_back(seed, start, transfer):
    call = generate_call(random.Random(seed), start.replace(tzinfo=SEOUL), ("201", "202"), ("1", "2"))
    if transfer == ("OT" if call.direction == "outgoing" else "IT"):
        call = replace(call, transfer=transfer)
    raw = format_record(call, OPTIONS)
    if call.direction == "internal":
        assert raw == b""
        return
    assert raw.endswith(b"\x00")
    received = ParseContext(tz=SEOUL, received_at=call.start)
    parsed = parse_record(raw.rstrip(b"\r\n\x00"), OPTIONS, received)
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(replace(call, trunk=""))  # the record names no trunk
