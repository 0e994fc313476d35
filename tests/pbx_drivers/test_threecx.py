"""3CX CDR: the real v20 row, configured field orders, directions from party types, both socket modes as
transports, quarantine reasons and round trips."""

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
from pbx_drivers.callgen import generate_call
from pbx_drivers.threecx import SPEC, ThreeCxOptions, format_record, parse_record
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture

STOCKHOLM = ZoneInfo("Europe/Stockholm")
CONTEXT = ParseContext(tz=STOCKHOLM, received_at=datetime(2024, 6, 17, 12, tzinfo=STOCKHOLM))
OPTIONS = ThreeCxOptions()
ROW = load_capture("threecx").data.splitlines()[0]


def test_spec_and_both_socket_modes():
    assert validate_spec(SPEC) == []
    assert {"tcp-server", "tcp-client", "file"} <= SPEC.transports  # active socket, passive socket, files
    with pytest.raises(ConfigError, match="3CX must send"):
        REGISTRY.options("pbx", "threecx", {"fields": ["historyid", "callid"]})


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("threecx"), split, trailing=b"Call 288832,4cc2c7249")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("threecx"), cuts)


def test_a_short_field_list_in_another_order():
    options = ThreeCxOptions(fields=("from_type", "to_type", "from_no", "to_no", "from_dn", "to_dn",
                                     "duration",
                                     "time_start", "time_answered", "callid"))
    line = (b"Line,Extension,+46703014082,Ext.10016,10020,10016,00:01:00,2024/06/17 05:59:49,"
            b"2024/06/17 06:00:01,x1")
    call = parse_record(line, options, CONTEXT)
    assert (call.direction, call.extension, call.trunk, call.caller, call.ring, call.duration) == (
        "incoming", "10016", "10020", "+46703014082", 12, 60)


def test_missed_call_and_internal_call():
    missed = parse_record(ROW.replace(b"2024/06/17 05:59:58", b""), OPTIONS, CONTEXT)
    assert (missed.answered, missed.duration, missed.ring) == (False, 0, 34)
    internal = parse_record(ROW.replace(b",Extension,Line,Line,", b",Extension,Extension,Extension,"),
                            OPTIONS, CONTEXT)
    assert (internal.direction, internal.dialled) == ("internal", "10020")


@pytest.mark.parametrize("line, reason", [
    (b"Call 1,2", "2 fields"),
    (ROW.replace(b"2024/06/17 05:59:49", b"17.06.2024"), "time"),
    (ROW.replace(b"00:00:25", b"25s"), "duration"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=300))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, OPTIONS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       call_id=st.sampled_from(["", "4cc2c72490010000_26808"]), transfer=st.sampled_from(["", "ReplacedDst"]))
def test_format_then_parse_gives_the_call_back(seed, start, call_id, transfer):
    call = generate_call(random.Random(seed), start.replace(tzinfo=STOCKHOLM, fold=0), ("10016", "10017"),
                         ("10020", "10021"))
    call = replace(call, call_id=call_id, transfer=transfer)
    parsed = parse_record(format_record(call, OPTIONS).rstrip(b"\r\n"), OPTIONS, CONTEXT)
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(replace(call, ring=call.ring or 0))
