"""The generic driver: options validation, a real Asterisk CSV and a HiPath-style fixed-width capture, the
rules (skip, direction, answered, year inference, end times) and round trips of generated calls."""

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
from appliance.schema import Problems, build
from pbx_drivers.callgen import generate_call
from pbx_drivers.generic import SPEC, GenericOptions, format_record, parse_record
from tests.pbx_drivers import REGISTRY, call_fields, calls_only, load_capture, parse_capture, quarantined

UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
CONTEXT = ParseContext(tz=BERLIN, received_at=datetime(2025, 3, 14, 12, 0, tzinfo=BERLIN))


def options(**data) -> GenericOptions:
    return REGISTRY.options("pbx", "generic", data)


def problems_for(**data) -> Problems:
    problems: Problems = []
    build(GenericOptions, data, "pbx[0].options", problems)
    return problems


def parse(line: str | bytes, opts: GenericOptions, context: ParseContext = CONTEXT):
    return parse_record(line.encode() if isinstance(line, str) else line, opts, context)


FIXED = dict(format="fixed", columns={"date": [1, 5], "time": [7, 12], "duration": [14, 21],
                                      "extension": [23, 29], "dialled": [31, 54]},
             date_format="%m/%d", time_format="%I:%M%p", duration_format="hms")


# ---------------------------------------------------------------- options


def test_spec_and_defaults_are_valid():
    assert validate_spec(SPEC) == []
    assert GenericOptions().format == "csv"


@pytest.mark.parametrize("data, message", [
    ({"colums": {}}, "unknown key (did you mean 'columns'?)"),
    ({"fields": {"start": 1, "duration": 2, "extension": 3}}, "'start' is not a field"),
    ({"format": "fixed"}, "map datetime, or time (and date)"),
    ({"format": "fixed", "columns": {"time": [5, 1], "duration": [6, 8], "extension": [9, 9]}},
     "[start, end]"),
    ({"format": "fixed", "columns": {"time": [1, 5], "extension": [9, 9]}}, "map duration"),
    ({"fields": {"datetime": 0, "duration": 1, "extension": 2}}, "indexes count from 1"),
    ({"skip": ["(unclosed"]}, "regular expression '(unclosed'"),
    ({"datetime_format": "%Q"}, "datetime_format '%Q'"),
    ({"delimiter": ";;"}, "one character"),
    ({"answered_rule": "field", "fields": {"datetime": 1, "duration": 2, "extension": 3}}, "answered field"),
    ({"duration_format": "hours"}, "must be one of 'hms', 'seconds', 'minutes'"),
    ({"direction_values": {"X": "sideways"}}, "must be one of 'outgoing'"),
])
def test_bad_options_are_reported_with_their_path(data, message):
    problems = problems_for(**data)
    assert problems and any(message in text for _, text in problems), problems
    assert all(path.startswith("pbx[0].options") for path, _ in problems)


def test_registry_turns_problems_into_a_config_error():
    with pytest.raises(ConfigError, match="option.colums: unknown key"):
        options(colums={})


# ---------------------------------------------------------------- captures


@pytest.mark.parametrize("name", ["asterisk_generic", "hipath_generic"])
@pytest.mark.parametrize("split", ["whole", "bytewise", "crlf", "trailing"])
def test_capture_through_the_link(name, split):
    capture = load_capture(name)
    data = capture.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if split == "crlf" else capture.data
    chunks = [data[i:i + 1] for i in range(len(data))] if split == "bytewise" else [data]
    if split == "trailing":
        chunks.append(b"20")
    results = parse_capture(capture, chunks)
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    assert [item.raw for item in quarantined(results)] == ([b"20"] if split == "trailing" else [])


def test_hipath_header_is_skipped_silently():
    capture = load_capture("hipath_generic")
    results = parse_capture(capture, [capture.data])
    headers = [item for item in results if isinstance(item, Ignored)]
    assert [(item.reason, item.quarantine) for item in headers] == [("matches skip pattern '^DATE '", False)]


# ---------------------------------------------------------------- rules


def test_no_year_twelve_hour_clock_and_bare_p():
    opts = options(**FIXED)
    call = parse("12/31 11:59P 00:01:05 2101    2125550134", opts,
                 ParseContext(tz=BERLIN, received_at=datetime(2025, 1, 1, 0, 5, tzinfo=BERLIN)))
    assert call.start == datetime(2024, 12, 31, 23, 59, tzinfo=BERLIN)
    assert (call.duration, call.extension, call.dialled, call.direction, call.answered) == (
        65, "2101", "2125550134", "outgoing", True)
    assert parse("03/05 12:05A 00:00:00 2101", opts).start.hour == 0


def test_leap_day_without_a_year():
    call = parse("02/29 10:00A 00:00:05 2101    5", options(**FIXED),
                 ParseContext(tz=BERLIN, received_at=datetime(2025, 3, 1, tzinfo=BERLIN)))
    assert call.start == datetime(2024, 2, 29, 10, 0, tzinfo=BERLIN)


def test_time_only_records_take_the_date_they_arrived():
    opts = options(fields={"time": 1, "duration": 2, "extension": 3}, time_format="%H:%M")
    late = ParseContext(tz=BERLIN, received_at=datetime(2025, 3, 15, 0, 2, tzinfo=BERLIN))
    assert parse("23:58,30,101", opts, late).start == datetime(2025, 3, 14, 23, 58, tzinfo=BERLIN)


def test_end_time_and_minutes():
    opts = options(fields={"datetime": 1, "duration": 2, "extension": 3, "ring": 4}, time_is="end",
                   duration_format="minutes", ring_format="hms")
    call = parse("2025-03-14 10:20:00,2.5,101,0'12", opts)
    assert call.start == datetime(2025, 3, 14, 10, 17, 30, tzinfo=BERLIN)
    assert (call.duration, call.ring) == (150, 12)


def test_trunk_in_the_extension_column_means_incoming():
    opts = options(fields={"datetime": 1, "duration": 2, "extension": 3, "dialled": 4, "caller": 5},
                   trunk_pattern=r"T\d+", internal_max_digits=4)
    incoming = parse("2025-03-14 10:20:00,60,T801,2102,2125550134", opts)
    assert (incoming.direction, incoming.trunk, incoming.extension, incoming.dialled, incoming.caller) == (
        "incoming", "T801", "2102", "", "2125550134")
    internal = parse("2025-03-14 10:20:00,60,2101,2102,", opts)
    assert (internal.direction, internal.extension, internal.dialled) == ("internal", "2101", "2102")
    outgoing = parse("2025-03-14 10:20:00,60,2101,912125550134,", opts)
    assert outgoing.direction == "outgoing"


def test_answered_rules():
    fields = {"datetime": 1, "duration": 2, "extension": 3, "answered": 4}
    assert parse("2025-03-14 10:20:00,0,101,Y", options(fields=fields)).answered is True
    assert parse("2025-03-14 10:20:00,9,101,N", options(fields=fields)).answered is False
    by_duration = options(fields={"datetime": 1, "duration": 2, "extension": 3})
    assert parse("2025-03-14 10:20:00,0,101", by_duration).answered is False
    always = options(fields={"datetime": 1, "duration": 2, "extension": 3}, answered_rule="always")
    assert parse("2025-03-14 10:20:00,0,101", always).answered is True


def test_skip_and_min_length_are_silent():
    opts = options(**FIXED, skip=["^Date"], min_length=20)
    assert parse("Date Time Ext", opts).quarantine is False
    assert parse("----", opts) == Ignored(reason="shorter than min_length 20", raw=b"----", quarantine=False)
    assert parse("", opts).quarantine is False


@pytest.mark.parametrize("line, reason", [
    ("2025-03-14,5,,101,,,,O,Y,,,", "'2025-03-14' does not match the format '%Y-%m-%d %H:%M:%S'"),
    ("2025-03-14 10:20:00,five,,101,,,,O,Y,,,", "duration 'five' is not a number of seconds"),
    ("2025-03-14 10:20:00,5,,101,,,,Q,Y,,,", "direction 'Q' is not one of 'O', 'I', 'L', 'T'"),
    ("2025-03-14 10:20:00,5,,101,,,,O,maybe,,,", "answered 'maybe' is not one of 'Y', 'N'"),
    ("2025-03-14 10:20:00,5", "2 fields, but"),
    ('2025-03-14 10:20:00,"5', "fields, but"),
])
def test_bad_records_are_quarantined_with_the_reason(line, reason):
    result = parse(line, GenericOptions())
    assert isinstance(result, Ignored) and result.quarantine
    assert reason in result.reason


@given(st.binary(max_size=200))
def test_parse_record_never_raises(data):
    assert isinstance(parse(data, GenericOptions()), (CallRecord, Ignored))
    assert isinstance(parse(data, options(**FIXED)), (CallRecord, Ignored))


# ---------------------------------------------------------------- round trips

EXTENSIONS = ("101", "102", "2215")
TRUNKS = ("T801", "T802")
ROUND_TRIP_OPTIONS = {
    "default csv": {},
    "semicolons, hms, end time": {"delimiter": ";", "duration_format": "hms", "time_is": "end"},
    "fixed, no year, 12-hour": {
        "format": "fixed", "date_format": "%m/%d", "time_format": "%I:%M:%S %p", "duration_format": "hms",
        "columns": {"date": [1, 5], "time": [7, 17], "duration": [19, 26], "ring": [28, 30],
                    "extension": [32, 38], "trunk": [40, 45], "dialled": [47, 70], "caller": [72, 91],
                    "direction": [93, 93], "answered": [95, 95], "account_code": [97, 108]},
    },
}


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       name=st.sampled_from(sorted(ROUND_TRIP_OPTIONS)))
def test_format_then_parse_gives_the_call_back(seed, start, name):
    opts = options(**ROUND_TRIP_OPTIONS[name])
    call = generate_call(random.Random(seed), start.replace(tzinfo=UTC), EXTENSIONS, TRUNKS)
    raw = format_record(call, opts)
    assert raw.endswith(b"\r\n")
    received = ParseContext(tz=UTC, received_at=call.start + timedelta(seconds=call.duration + 60))
    parsed = parse_record(raw[:-2], opts, received)
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(call)


def test_format_refuses_values_that_do_not_fit():
    opts = options(**ROUND_TRIP_OPTIONS["fixed, no year, 12-hour"])
    call = parse("2025-03-14 10:20:00,5,,101,T801,5,,O,Y,,,", GenericOptions())
    with pytest.raises(ValueError, match="dialled"):
        format_record(replace(call, dialled="1" * 30), opts)
    coded = options(direction_values={"O": "outgoing"})
    with pytest.raises(ValueError, match="direction 'incoming' has no code"):
        format_record(replace(call, direction="incoming"), coded)
