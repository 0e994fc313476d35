"""FreeSWITCH mod_cdr_csv: the real "example" template rows, other templates, incoming contexts, B legs
with legs=ab, quarantine reasons and round trips."""

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
from pbx_drivers.freeswitch import EXAMPLE_TEMPLATE, SPEC, FreeswitchOptions, format_record, parse_record
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture

UTC = ZoneInfo("UTC")
CONTEXT = ParseContext(tz=UTC, received_at=datetime(2023, 10, 11, tzinfo=UTC))
OPTIONS = FreeswitchOptions()
WITH_LEGS = FreeswitchOptions(fields=(*EXAMPLE_TEMPLATE, "direction", "sip_gateway_name"), legs="ab")


def test_spec_and_options():
    assert validate_spec(SPEC) == []
    with pytest.raises(ConfigError, match="direction"):
        REGISTRY.options("pbx", "freeswitch", {"legs": "ab"})
    with pytest.raises(ConfigError, match="billsec"):
        REGISTRY.options("pbx", "freeswitch", {"fields": ["caller_id_number", "destination_number"]})


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("freeswitch"), split, trailing=b'"spypi","91342657","*10')


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=500), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("freeswitch"), cuts)


def test_incoming_context_and_outgoing_gateway():
    first = load_capture("freeswitch").data.splitlines()[0]
    call = parse_record(first, FreeswitchOptions(incoming_contexts=("blueivr",)), CONTEXT)
    assert (call.direction, call.extension, call.dialled, call.caller) == ("incoming", "1001", "*1001",
                                                                           "91342657")
    out = (b'"1001","1001","12125550134","default","2023-10-10 23:26:08","2023-10-10 23:26:10",'
           b'"2023-10-10 23:26:15","7","5","NORMAL_CLEARING","a","b","","PCMA","PCMA","inbound","pstn"')
    call = parse_record(out, WITH_LEGS, CONTEXT)
    assert (call.direction, call.trunk, call.dialled, call.duration, call.ring) == (
        "outgoing", "pstn", "12125550134", 5, 2)


def test_b_legs_are_ignored_with_legs_ab():
    b_leg = (b'"1001","1001","1002","default","2023-10-10 23:26:08","2023-10-10 23:26:10",'
             b'"2023-10-10 23:26:15","7","5","NORMAL_CLEARING","b-uuid","a-uuid","","PCMA","PCMA",'
             b'"outbound",""')
    result = parse_record(b_leg, WITH_LEGS, CONTEXT)
    assert isinstance(result, Ignored) and not result.quarantine and "A leg" in result.reason


def test_unanswered_call():
    line = (b'"1001","1001","1002","default","2023-10-10 23:26:08","","2023-10-10 23:26:30","22","0",'
            b'"NO_ANSWER","u","","","PCMA","PCMA"')
    call = parse_record(line, OPTIONS, CONTEXT)
    assert (call.answered, call.duration, call.ring) == (False, 0, 22)


@pytest.mark.parametrize("line, reason", [
    (b'"a","b"', "2 fields"),
    (load_capture("freeswitch").data.splitlines()[0].replace(b'"10","8"', b'"10","x"'), "billsec"),
    (load_capture("freeswitch").data.splitlines()[0].replace(b"2023-10-10 23:24:01", b"yesterday"),
     "start_stamp"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, OPTIONS, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=300))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, WITH_LEGS, CONTEXT), (CallRecord, Ignored))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       call_id=st.sampled_from(["", "eb1e406c-8871-4d69-9631-e7130f7ae390"]))
def test_format_then_parse_gives_the_call_back(seed, start, call_id):
    call = generate_call(random.Random(seed), start.replace(tzinfo=UTC), ("1001", "1002"), ("pstn", "sip2"))
    call = replace(call, call_id=call_id)
    parsed = parse_record(format_record(call, WITH_LEGS).rstrip(b"\r\n"), WITH_LEGS, CONTEXT)
    assert isinstance(parsed, CallRecord), parsed
    expected = replace(call, ring=call.ring or 0, trunk="" if call.direction == "internal" else call.trunk)
    assert call_fields(parsed) == call_fields(expected)
