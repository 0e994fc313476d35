"""Asterisk Master.csv: the real rows with the device's SIP account as trunk, 16/17/18-field rows, channel
rules for direction, UTC files, quarantine reasons and round trips."""

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
from pbx_drivers.asterisk import SPEC, AsteriskOptions, format_record, parse_record
from pbx_drivers.callgen import generate_call
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture

UTC = ZoneInfo("UTC")
CONTEXT = ParseContext(tz=UTC, received_at=datetime(2020, 8, 28, tzinfo=UTC))
OPTIONS = AsteriskOptions(trunk_channels=("^SIP/sip0",))
ANSWERED = load_capture("asterisk").data.splitlines()[1]


def test_spec_and_options():
    assert validate_spec(SPEC) == [] and "file" in SPEC.transports
    with pytest.raises(ConfigError, match="trunk_channels"):
        REGISTRY.options("pbx", "asterisk", {"trunk_channels": ["("]})


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("asterisk"), split, trailing=b'"","8001","8002","sip0"')


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=900), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("asterisk"), cuts)


def test_sixteen_and_seventeen_field_rows():
    sixteen = ANSWERED.rsplit(b",", 2)[0]
    call = parse_record(sixteen, OPTIONS, CONTEXT)
    assert (call.call_id, call.duration, call.ring) == ("", 5, 3)
    assert parse_record(ANSWERED.rsplit(b",", 1)[0], OPTIONS, CONTEXT).call_id == "1598518936.86"


def test_default_trunk_channels_and_the_extension_in_the_channel_name():
    line = (b'"","2125550188","5551000","from-trunk","""x"" <2125550188>","DAHDI/3-1","SIP/101-0000001f",'
            b'"Dial","SIP/101","2024-01-01 10:00:00","2024-01-01 10:00:07","2024-01-01 10:01:07",67,60,'
            b'"ANSWERED","DOCUMENTATION"')
    call = parse_record(line, AsteriskOptions(), CONTEXT)
    assert (call.direction, call.extension, call.trunk, call.caller, call.dialled) == (
        "incoming", "101", "DAHDI/3", "2125550188", "5551000")


def test_utc_files_are_turned_into_site_time():
    tokyo = ParseContext(tz=ZoneInfo("Asia/Tokyo"), received_at=CONTEXT.received_at)
    call = parse_record(ANSWERED, AsteriskOptions(trunk_channels=("^SIP/sip0",), utc=True), tokyo)
    assert call.start.isoformat() == "2020-08-27T20:02:16+09:00"


@pytest.mark.parametrize("line, reason", [
    (ANSWERED.replace(b'"ANSWERED"', b'"MAYBE"'), "disposition"),
    (ANSWERED.replace(b",8,5,", b",8,x,"), "billsec"),
    (ANSWERED.replace(b"2020-08-27 11:02:16", b"27/08/2020 11:02"), "start"),
    (b'"a","b"', "2 fields"),
    (b'"unterminated', "fields"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


def test_header_line_is_not_quarantined():
    assert parse_record(b"accountcode,src,dst,dcontext", OPTIONS, CONTEXT).quarantine is False


@given(st.binary(max_size=300))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       utc=st.booleans(), call_id=st.sampled_from(["", "1598518936.86"]))
def test_format_then_parse_gives_the_call_back(seed, start, utc, call_id):
    zone = ZoneInfo("America/New_York")
    call = generate_call(random.Random(seed), start.replace(tzinfo=zone, fold=0), ("101", "102"),
                         ("DAHDI/1", "SIP/trunk_pstn"))
    call = replace(call, call_id=call_id)
    options = AsteriskOptions(utc=utc)
    parsed = parse_record(format_record(call, options).rstrip(b"\r\n"), options,
                          ParseContext(tz=zone, received_at=call.start))
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(replace(call, ring=call.ring or 0))
