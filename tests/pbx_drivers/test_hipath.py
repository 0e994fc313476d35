"""Siemens/Unify HiPath compressed records: the constructed capture (end times, DD.MM.YY, caller IDs on
incoming calls, ring-time records, forwarding, masked digits), quarantine reasons and round trips."""

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
from pbx_drivers.hipath import SPEC, HiPathOptions, format_record, parse_record
from tests.pbx_drivers import SPLITS, call_fields, check_any_split, check_capture, load_capture

BERLIN = ZoneInfo("Europe/Berlin")
CONTEXT = ParseContext(tz=BERLIN, received_at=datetime(2025, 3, 14, 12, tzinfo=BERLIN))
OPTIONS = HiPathOptions()
LINES = load_capture("hipath").data.splitlines()


def test_spec_is_valid():
    assert validate_spec(SPEC) == [] and "serial" in SPEC.transports


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("hipath"), split, trailing=b"14.03.2510:1")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=800), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("hipath"), cuts)


def test_end_time_new_years_eve_and_ring_records():
    new_year = parse_record(LINES[5], OPTIONS, CONTEXT)
    assert new_year.start == datetime(2024, 12, 31, 23, 58, 45, tzinfo=BERLIN)  # 23:59:30 less 45 s
    ring = parse_record(LINES[6], OPTIONS, CONTEXT)
    assert isinstance(ring, Ignored) and not ring.quarantine and "type 0" in ring.reason
    assert parse_record(LINES[0], OPTIONS, CONTEXT).quarantine is False


@pytest.mark.parametrize("line, reason", [
    (LINES[1][:77] + b"X" + LINES[1][78:], "call type 'X'"),
    (LINES[1].replace(b"14.03.25", b"31.02.25"), "DD.MM.YY"),
    (LINES[1].replace(b"00:02:05", b"        ").replace(b"  125", b"  abc"), "no duration"),
    (LINES[1].replace(b"2101  ", b"21A1  "), "columns out of place"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=120))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       forwarded=st.booleans())
def test_format_then_parse_gives_the_call_back(seed, start, forwarded):
    call = generate_call(random.Random(seed), start.replace(tzinfo=BERLIN, fold=0), ("2101", "2102"),
                         ("801", "802"))
    if forwarded and call.direction != "internal":
        call = replace(call, transfer="forwarded")
    raw = format_record(call, OPTIONS)
    if call.direction == "internal":
        assert raw == b""
        return
    parsed = parse_record(raw.rstrip(b"\r\n"), OPTIONS, CONTEXT)
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(replace(call, ring=None, answered=call.duration > 0))
