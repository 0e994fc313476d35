"""Avaya IP Office SMDR: the real 9.1 capture, field-count variants, quarantine reasons and round trips."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.errors import ConfigError
from appliance.events import CallRecord, Ignored
from appliance.registry import validate_spec
from pbx_drivers.avaya_ipoffice import SPEC, IpOfficeOptions, format_record, parse_record
from pbx_drivers.callgen import generate_call
from tests.pbx_drivers import REGISTRY, call_fields, calls_only, load_capture, parse_capture, quarantined

VANCOUVER = ZoneInfo("America/Vancouver")
CONTEXT = ParseContext(tz=VANCOUVER, received_at=datetime(2016, 9, 2, tzinfo=VANCOUVER))
OPTIONS = IpOfficeOptions()
OUTGOING = ("2016/09/01 01:33:36,00:00:57,0,239,O,12043247403,12043242878,,0,1007534,0,E239,Volunteer6,T9004,"
            "Line 4.0,0,0,,,,,,,,,,,U,Volunteer6,")


def parse(line: str | bytes, options: IpOfficeOptions = OPTIONS):
    return parse_record(line.encode() if isinstance(line, str) else line, options, CONTEXT)


def test_spec_is_valid():
    assert validate_spec(SPEC) == []
    with pytest.raises(ConfigError, match="fields must be between 30 and 37"):
        REGISTRY.options("pbx", "avaya_ipoffice", {"fields": 29})


def test_every_capture_line_parses_to_the_expected_call():
    capture = load_capture("avaya_ipoffice")
    results = parse_capture(capture, [capture.data])
    assert quarantined(results) == []
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    assert [call.raw for call in calls_only(results)] == capture.data.splitlines()


@pytest.mark.parametrize("split", ["whole", "bytewise", "crlf", "trailing"])
def test_capture_through_the_link(split):
    capture = load_capture("avaya_ipoffice")
    data = capture.data.replace(b"\n", b"\r\n") if split == "crlf" else capture.data
    chunks = [data[i:i + 1] for i in range(len(data))] if split == "bytewise" else [data]
    if split == "trailing":
        chunks.append(b"2016/09/01 12:1")
    results = parse_capture(capture, chunks)
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    cut_off = [b"2016/09/01 12:1"] if split == "trailing" else []
    assert [item.raw for item in quarantined(results)] == cut_off


def test_outgoing_line_field_by_field():
    call = parse(OUTGOING)
    assert call.start == datetime(2016, 9, 1, 1, 33, 36, tzinfo=VANCOUVER)
    assert call.start.utcoffset().total_seconds() == -7 * 3600  # PDT
    assert (call.extension, call.trunk, call.dialled, call.caller) == ("239", "T9004", "12043242878", "")
    assert (call.duration, call.ring, call.direction, call.answered) == (57, 0, "outgoing", True)


@pytest.mark.parametrize("extra", [0, 5, 7])
def test_releases_with_35_and_37_fields(extra):
    # IP Office 10/11+ appends server IPs, unique call ids, record time and consent fields.
    tail = ["192.168.42.1", "1234", "192.168.42.2", "5678", "2016/09/01 01:34:33", "0", "p"][:extra]
    line = OUTGOING + "".join("," + value for value in tail)
    assert len(line.split(",")) == 30 + extra
    assert call_fields(parse(line)) == call_fields(parse(OUTGOING))


def test_connected_time_zero_is_unanswered_in_every_direction():
    unanswered_out = OUTGOING.replace("00:00:57", "00:00:00")
    assert parse(unanswered_out).answered is False
    capture = load_capture("avaya_ipoffice")
    internal = parse(capture.data.splitlines()[8])  # E225 -> V8000, 00:00:00
    assert (internal.direction, internal.answered, internal.duration) == ("internal", False, 0)


def test_o_call_to_voicemail_with_is_internal_zero_is_internal():
    line = load_capture("avaya_ipoffice").data.splitlines()[5]
    assert b",O," in line and b",0,1007532," in line
    assert parse(line).direction == "internal"


def test_trunk_to_trunk_is_tandem():
    line = OUTGOING.replace("E239,Volunteer6,T9004", "T9001,Line 1.0,T9004")
    line = line.replace(",239,O,", ",6045550100,O,")
    call = parse(line)
    assert (call.direction, call.trunk, call.extension, call.caller) == ("tandem", "T9004", "", "6045550100")


def test_continuation_goes_into_transfer():
    call = parse(load_capture("avaya_ipoffice").data.splitlines()[9])
    assert (call.call_id, call.transfer) == ("1007593", "continued")
    assert (call.extension, call.trunk) == ("221", "T9007")


def test_header_and_blank_lines_are_not_quarantined():
    header = b"Call Start,Connected Time,Ring Time,Caller,Direction,Called Number,Dialled Number"
    assert parse(header) == Ignored(reason="column titles", raw=header, quarantine=False)
    assert parse(b"  ").quarantine is False


@pytest.mark.parametrize("line, reason", [
    (b"garbage", "1 fields"),
    (OUTGOING.replace("2016/09/01", "2016-09-01").encode(), "call start"),
    (OUTGOING.replace(",O,", ",X,").encode(), "direction 'X'"),
    (OUTGOING.replace("00:00:57", "00:0x:57").encode(), "duration"),
    (OUTGOING.replace("00:00:57,0,", "00:00:57,abc,").encode(), "ring time"),
    (OUTGOING.replace(",0,1007534,0,", ",0,1007534,7,").encode(), "field 11"),
    (OUTGOING.replace("Volunteer6,T9004", "Volun\x07teer6,T9004").encode(), "control character"),
    ((OUTGOING + ",,,,,,,,,").encode(), "39 fields"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse(line)
    assert isinstance(result, Ignored) and result.quarantine
    assert reason in result.reason


def test_non_ascii_names_are_replaced_not_quarantined():
    call = parse(OUTGOING.replace("Volunteer6", "J\u00fcrgen").encode("utf-8"))
    assert isinstance(call, CallRecord) and call.extension == "239"
    assert call.raw == OUTGOING.replace("Volunteer6", "J\u00fcrgen").encode("utf-8")


@given(st.binary(max_size=300))
def test_parse_record_never_raises(data):
    assert isinstance(parse(data), (CallRecord, Ignored))


FIELD_VALUES = ["", "0", "1", "I", "O", "E12", "T9001", "V1", "00:00:05", "2016/09/01 00:00:00", "x"]


@given(st.lists(st.sampled_from(FIELD_VALUES), min_size=28, max_size=40))
def test_parse_record_never_raises_on_shuffled_fields(values):
    assert isinstance(parse(",".join(values)), (CallRecord, Ignored))


EXTENSIONS = ("241", "246", "239", "225")
TRUNKS = ("T9001", "T9002", "T9100")


@settings(max_examples=300)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       fields=st.integers(min_value=30, max_value=37),
       call_id=st.sampled_from(["", "1007534"]),
       continued=st.booleans())
def test_format_then_parse_gives_the_call_back(seed, start, fields, call_id, continued):
    call = generate_call(random.Random(seed), start.replace(tzinfo=VANCOUVER, fold=0), EXTENSIONS, TRUNKS)
    call = replace(call, call_id=call_id, transfer="continued" if continued else "")
    options = IpOfficeOptions(fields=fields)
    raw = format_record(call, options)
    assert raw.endswith(b"\r\n") and raw.count(b",") == fields - 1
    parsed = parse_record(raw[:-2], options, CONTEXT)
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(call)


def test_format_matches_the_real_outgoing_line():
    written = format_record(parse(OUTGOING), OPTIONS).decode()
    assert written.split(",")[:12] == OUTGOING.split(",")[:4] + ["O", "12043242878", "12043242878", "", "0",
                                                                   "1007534", "0", "E239"]
    assert written.split(",")[13] == "T9004"


def test_format_refuses_what_ip_office_cannot_say():
    call = parse(OUTGOING)
    with pytest.raises(ValueError, match="trunk"):
        format_record(replace(call, trunk="SIP Line"), OPTIONS)
    assert parse(format_record(replace(call, trunk="801"), OPTIONS)[:-2]).trunk == "T801"
    with pytest.raises(ValueError, match="comma"):
        format_record(replace(call, account_code="1,2"), OPTIONS)
