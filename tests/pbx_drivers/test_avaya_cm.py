"""Avaya Communication Manager CDR: the unformatted and customized captures (constructed from the
documented layouts), condition codes, h-mm-t durations, time-of-day-only records dated by their arrival,
day/month dates, customized column lists from YAML, the printer layout and round trips."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.errors import ConfigError
from appliance.events import CallRecord, Ignored
from appliance.registry import validate_spec
from pbx_drivers.avaya_cm import SPEC, AvayaCmOptions, format_record, parse_record
from pbx_drivers.callgen import generate_call
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture

CHICAGO = ZoneInfo("America/Chicago")
CONTEXT = ParseContext(tz=CHICAGO, received_at=datetime(2025, 3, 14, 12, 0, tzinfo=CHICAGO))
UNFORMATTED = AvayaCmOptions()


def options(**data) -> AvayaCmOptions:
    return REGISTRY.options("pbx", "avaya_cm", data)


def test_spec_and_column_list_validation():
    assert validate_spec(SPEC) == []
    custom = options(layout="customized", columns=[["time", 4], ["space", "1"], ["sec-dur", 5],
                                                   ["dialed-num", 18], ["calling-num", 7]])
    assert custom.columns[1] == ("space", 1)
    assert custom.table() == {"time": (0, 4), "sec-dur": (5, 10), "dialed-num": (10, 28),
                              "calling-num": (28, 35)}
    with pytest.raises(ConfigError, match="'dialled' is not a CM CDR field"):
        options(layout="customized", columns=[["time", 4], ["dialled", 15]])
    with pytest.raises(ConfigError, match="needs time and duration or sec-dur"):
        options(layout="customized", columns=[["time", 4]])
    with pytest.raises(ConfigError, match="time is 4 characters"):
        options(layout="customized", columns=[["time", 5], ["sec-dur", 5]])


@pytest.mark.parametrize("name", ["avaya_cm", "avaya_cm_customized"])
@pytest.mark.parametrize("split", SPLITS)
def test_captures_through_the_link(name, split):
    check_capture(load_capture(name), split, trailing=b"1017002")  # cut inside the duration


@settings(max_examples=40)
@given(st.lists(st.integers(min_value=0, max_value=800), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("avaya_cm"), cuts)


def test_unformatted_outgoing_field_by_field():
    line = load_capture("avaya_cm").data.splitlines()[0]
    call = parse_record(line, UNFORMATTED, CONTEXT)
    # 10:17 is the END; "0021" is 0 h 02 min 1 tenth = 126 s
    assert call == CallRecord(start=datetime(2025, 3, 14, 10, 14, 54, tzinfo=CHICAGO), duration=126,
                              ring=None,
                              extension="2101", trunk="801", dialled="2125550134", caller="",
                              direction="outgoing", answered=True, raw=line)


def test_condition_codes():
    lines = load_capture("avaya_cm").data.replace(b"\x00", b"").splitlines()
    calls = [parse_record(line, UNFORMATTED, CONTEXT) for line in lines if line]
    assert [(c.direction, c.answered, c.transfer) for c in calls] == [
        ("outgoing", True, ""), ("incoming", True, ""), ("internal", True, ""), ("incoming", False, ""),
        ("outgoing", True, ""), ("outgoing", True, "interim"), ("tandem", True, "")]


def test_time_of_day_only_is_dated_by_arrival_around_midnight():
    line = load_capture("avaya_cm").data.splitlines()[0].replace(b"1017", b"2359")
    after_midnight = ParseContext(tz=CHICAGO, received_at=datetime(2025, 3, 15, 0, 2, tzinfo=CHICAGO))
    expected = datetime(2025, 3, 14, 23, 56, 54, tzinfo=CHICAGO)
    assert parse_record(line, UNFORMATTED, after_midnight).start == expected


def test_day_month_dates_and_start_times():
    line = load_capture("avaya_cm_customized").data.splitlines()[0].replace(b"031425", b"140325")
    dmy = options(layout="customized", date_order="dmy", time_is="start")
    assert parse_record(line, dmy, CONTEXT).start == datetime(2025, 3, 14, 10, 17, tzinfo=CHICAGO)
    assert isinstance(parse_record(line, options(layout="customized"), CONTEXT), Ignored)


def test_printer_layout():
    line = b"1017 0021 7 9   801 2125550134      2101"
    call = parse_record(line, options(layout="printer"), CONTEXT)
    assert (call.extension, call.trunk, call.dialled, call.duration) == ("2101", "801", "2125550134", 126)


@pytest.mark.parametrize("line, reason", [
    (b"x" * 120, "longer than the unformatted layout"),
    (b"10x7002179", "time '10x7'"),
    (b"10170021", "no condition code"),
    (b"1017002", "duration"),
    (b"10170021X", "condition code 'X'"),
    (b"1017002179   801 21255A0134", "dialed-num"),
    (b"1017\x07002179", "byte 0x07"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, UNFORMATTED, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=120))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, UNFORMATTED, CONTEXT), (CallRecord, Ignored))
    assert isinstance(parse_record(data, AvayaCmOptions(layout="customized"), CONTEXT), (CallRecord, Ignored))


def expected_after_round_trip(call: CallRecord, options: AvayaCmOptions) -> CallRecord:
    """Minutes only, h mm t durations rounded up to 6 s and capped, numbers cut to their columns (the
    printer layout's calling number has 5), and no ring time."""
    duration = call.duration
    if options.layout != "customized":
        duration = min(-(-duration // 6), 5999) * 6
    end = (call.start + timedelta(seconds=duration)).replace(second=0)
    start = end - timedelta(seconds=duration) if options.time_is == "end" else call.start.replace(second=0)
    answered = call.answered and duration > 0
    width = 5 if options.layout == "printer" else 10 if options.layout == "unformatted" else 15
    dialled = call.dialled[:23 if options.layout == "customized" else 15]
    account = call.account_code if "acct-code" in options.table() else ""  # not in the default custom list
    return replace(call, start=start, duration=duration, ring=None, answered=answered,
                   caller=call.caller[:width], dialled=dialled, account_code=account)


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       layout=st.sampled_from(["unformatted", "printer", "customized"]),
       time_is=st.sampled_from(["start", "end"]))
def test_format_then_parse_gives_the_call_back(seed, start, layout, time_is):
    utc = ZoneInfo("UTC")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("2101", "2102"), ("801", "802"))
    if layout == "printer":
        call = replace(call, extension=call.extension[:5])
    opts = AvayaCmOptions(layout=layout, time_is=time_is)
    raw = format_record(call, opts)
    received = ParseContext(tz=utc, received_at=call.start + timedelta(seconds=call.duration + 60))
    parsed = parse_record(raw.rstrip(b"\r\n"), opts, received)
    assert isinstance(parsed, CallRecord), (raw, parsed)
    assert call_fields(parsed) == call_fields(expected_after_round_trip(call, opts))
