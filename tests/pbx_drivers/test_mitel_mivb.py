"""Mitel MiVoice Business SMDR: the real 207-char capture, hand-built lines for the other layouts, quarantine
reasons, and format_record -> parse_record round trips over generated calls."""

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
from pbx_drivers.callgen import generate_call
from pbx_drivers.mitel_mivb import SPEC, MitelOptions, format_record, parse_record
from tests.pbx_drivers import REGISTRY, call_fields, calls_only, load_capture, parse_capture, quarantined

TORONTO = ZoneInfo("America/Toronto")
CONTEXT = ParseContext(tz=TORONTO, received_at=datetime(2024, 3, 6, 9, 0, tzinfo=TORONTO))
OPTIONS = MitelOptions()


def parse(line: str | bytes, options: MitelOptions = OPTIONS, context: ParseContext = CONTEXT):
    return parse_record(line.encode() if isinstance(line, str) else line, options, context)


def standard_line(*, start="03/05 10:15P", duration="00:02:05", calling="2101", answer="    ",
                  digits="2125550134", completion="A", called="T801", transfer=" ", third="", account="1234",
                  ani="", dnis="") -> str:
    """A standard-layout record put together field by field from the manual's column table."""
    line = (" " + start + " " + duration.ljust(8) + " " + calling.ljust(4) + " " + answer + " "
            + digits.ljust(26) + completion + " " + called.ljust(4) + transfer + " " + third.ljust(4) + " "
            + account.ljust(12) + " " + "001" + "  ")
    assert len(line) == 90
    if ani or dnis:
        line += " " + ani.ljust(10) + " " + dnis.ljust(10)
        assert len(line) == 112
    return line


def test_spec_is_valid_and_registered():
    assert validate_spec(SPEC) == []
    assert SPEC.default_port == 1752
    assert REGISTRY.get("pbx", "mitel_mivb") is SPEC


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="option.layouts: unknown key"):
        REGISTRY.options("pbx", "mitel_mivb", {"layouts": "auto"})
    with pytest.raises(ConfigError, match="must be one of"):
        REGISTRY.options("pbx", "mitel_mivb", {"layout": "wide"})


# ---------------------------------------------------------------- the real capture


def test_capture_lines_kept_their_trailing_spaces():
    capture = load_capture("mitel_mivb")
    assert [len(line) for line in capture.data.splitlines()] == [207] * 6


def test_every_capture_line_parses_to_the_expected_call():
    capture = load_capture("mitel_mivb")
    results = parse_capture(capture, [capture.data])
    assert quarantined(results) == []
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    assert [call.raw for call in calls_only(results)] == capture.data.splitlines()


@pytest.mark.parametrize("split", ["whole", "bytewise", "crlf", "trailing"])
def test_capture_through_the_link(split):
    capture = load_capture("mitel_mivb")
    data = capture.data.replace(b"\n", b"\r\n") if split == "crlf" else capture.data
    chunks = [data[i:i + 1] for i in range(len(data))] if split == "bytewise" else [data]
    if split == "trailing":
        chunks.append(b" 03/05 15:4")  # a record cut off by the link dropping
    results = parse_capture(capture, chunks)
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    if split == "trailing":
        assert [item.raw for item in quarantined(results)] == [b" 03/05 15:4"]
    else:
        assert quarantined(results) == []


def test_sample_line_two_field_by_field():
    """The incoming sample: 4-digit answer time at 37-40, received digits at 42, called party at 70."""
    call = parse(load_capture("mitel_mivb").data.splitlines()[1])
    assert call.start == datetime(2024, 3, 5, 13, 15, 9, tzinfo=TORONTO)
    assert (call.duration, call.ring, call.extension, call.dialled, call.caller) == (21, 0, "9907", "9999",
                                                                                     "9999999999")
    assert (call.direction, call.answered, call.call_id) == ("incoming", True, "A0097399")


def test_level_one_reporting_line_without_seconds():
    line = load_capture("mitel_mivb").data.splitlines()[2].decode()
    level_one = line[:12] + line[15:]  # drop ":35" from the start time: everything after moves left by 3
    call = parse(level_one)
    assert call.start == datetime(2024, 3, 5, 13, 38, tzinfo=TORONTO)
    assert (call.duration, call.extension, call.dialled, call.caller, call.call_id) == (
        419, "9999", "9999999999", "89029", "A0099648")


# ---------------------------------------------------------------- the other layouts, built from the manual


def test_standard_outgoing_with_pm_clock_trunk_and_account():
    call = parse(standard_line())
    assert call == CallRecord(start=datetime(2024, 3, 5, 22, 15, tzinfo=TORONTO), duration=125, ring=None,
                              extension="2101", trunk="T801", dialled="2125550134", caller="",
                              direction="outgoing", answered=True, account_code="1234",
                              raw=standard_line().encode())


def test_standard_incoming_with_answer_time_ani_and_transfer():
    line = standard_line(start="03/05 09:02 ", calling="T802", answer=" 012", digits="4100", completion=" ",
                         called="2102", transfer="T", third="2105", account="", ani="2125550188", dnis="4100")
    call = parse(line)
    assert (call.direction, call.trunk, call.extension, call.caller, call.dialled) == (
        "incoming", "T802", "2102", "2125550188", "4100")
    assert (call.ring, call.answered, call.transfer) == (12, True, "T:2105")
    assert call.start == datetime(2024, 3, 5, 9, 2, tzinfo=TORONTO)


def test_standard_unanswered_incoming_and_busy_outgoing():
    unanswered = parse(standard_line(calling="X12", answer=" ***", digits="", completion=" ", called="2102"))
    assert (unanswered.direction, unanswered.answered, unanswered.ring) == ("incoming", False, None)
    busy = parse(standard_line(duration="00:00:04", completion="B"))
    assert (busy.direction, busy.answered, busy.duration) == ("outgoing", False, 4)


def test_standard_attendant_flag_before_answer_time():
    call = parse(standard_line(calling="T802", answer="*007", digits="", completion=" ", called="2102"))
    assert (call.ring, call.answered) == (7, True)


def test_standard_tandem_trunk_to_trunk():
    call = parse(standard_line(calling="T802", digits="2125550134", called="T801"))
    assert (call.direction, call.trunk, call.extension) == ("tandem", "T801", "")


def test_extended_digit_length_internal_with_conference():
    line = (" 03/05 10:15  0000:01:05 2101234 " + " " * 4 + " " + " " * 26 + "I " + "2105678"
            + "C " + "2109999" + " " + " " * 12 + " 001  ")
    assert len(line) == 101
    call = parse(line)
    assert (call.direction, call.extension, call.dialled) == ("internal", "2101234", "2105678")
    assert call.trunk == ""
    assert (call.duration, call.transfer, call.answered) == (65, "C:2109999", True)


def test_meter_pulses_are_not_dialled_digits():
    line = standard_line(digits="2125550134" + " " * 11 + "00042")
    assert parse(line).dialled == "2125550134"
    unmetered = parse(line, MitelOptions(meter_pulses="off"))
    assert isinstance(unmetered, Ignored) and "gap" in unmetered.reason
    twenty_one = "212555013412345678901"
    metered = parse(standard_line(digits=twenty_one + "00042"), MitelOptions(meter_pulses="on"))
    assert metered.dialled == twenty_one


def test_twelve_hour_clock_option_reads_midnight():
    line = standard_line(start="03/05 12:05 ")
    assert parse(line).start.hour == 12
    assert parse(line, MitelOptions(twelve_hour_clock=True)).start.hour == 0
    assert parse(standard_line(start="03/05 12:05P"), MitelOptions(twelve_hour_clock=True)).start.hour == 12


def test_december_record_read_on_new_years_day_is_last_year():
    new_year = ParseContext(tz=TORONTO, received_at=datetime(2025, 1, 1, 0, 3, tzinfo=TORONTO))
    call = parse(standard_line(start="12/31 11:59P"), context=new_year)
    assert call.start == datetime(2024, 12, 31, 23, 59, tzinfo=TORONTO)


def test_duration_overflow_past_100_hours():
    call = parse(" 03/05 10:15  0100:99:99 2101" + " " * 72)
    assert call.duration == 100 * 3600 + 59 * 60 + 59


# ---------------------------------------------------------------- what is not a call


def test_blank_line_is_ignored_without_quarantine():
    assert parse(b"   ") == Ignored(reason="blank line", raw=b"   ", quarantine=False)


@pytest.mark.parametrize("line, reason", [
    (b"SMDR buffer overflow", "columns 2-6"),
    (b" 13/45 10:15  00:00:05 2101", "13/45 is not a calendar date"),
    (b" 03/05 25:15  00:00:05 2101", "not a time of day"),
    (b" 03/05 10:15  00:0x:05 2101", "not hh:mm:ss"),
    (b" 03/05 10:15\x00 00:00:05 2101", "byte 0x00 at column 13"),
    (" 03/05 10:15  00:00:05 21\u00e901".encode("latin-1"), "byte 0xe9"),
    (standard_line(answer=" 1x2").encode(), "time to answer"),
    (standard_line(completion="7").encode(), "completion flag '7'"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse(line)
    assert isinstance(result, Ignored) and result.quarantine and result.raw == line
    assert reason in result.reason


def test_forcing_a_layout_without_seconds_on_a_level_two_line():
    line = load_capture("mitel_mivb").data.splitlines()[0]
    result = parse(line, MitelOptions(layout="extended"))
    assert isinstance(result, Ignored) and "Extended Reporting" in result.reason


def test_a_record_shifted_by_one_column_is_quarantined():
    line = load_capture("mitel_mivb").data.splitlines()[1]
    assert isinstance(parse(line[1:]), Ignored)


@given(st.binary(max_size=300))
def test_parse_record_never_raises_on_any_bytes(data):
    assert isinstance(parse(data), (CallRecord, Ignored))


@given(st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=206),
       st.sampled_from(list(b" 0123456789*:/APTXI\x7f")))
def test_parse_record_never_raises_on_damaged_sample_lines(index, column, byte):
    line = bytearray(load_capture("mitel_mivb").data.splitlines()[index])
    line[column] = byte
    assert isinstance(parse(bytes(line)), (CallRecord, Ignored))


# ---------------------------------------------------------------- format_record round trips

EXTENSIONS = ("2101", "2102", "2215", "3301", "1000")
TRUNKS = ("T801", "T802", "X12")


def expected_after_round_trip(call: CallRecord, layout: str) -> CallRecord:
    """What the format can carry: seconds only in Extended Reporting; no ring once unanswered incoming."""
    start = call.start if layout == "reporting" else call.start.replace(second=0)
    ring = None if call.direction == "incoming" and not call.answered else call.ring
    return replace(call, start=start, ring=ring)


@settings(max_examples=300)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       layout=st.sampled_from(["standard", "extended", "reporting"]),
       twelve=st.booleans(),
       call_id=st.sampled_from(["", "A0011234", "C0099410"]),
       transfer=st.sampled_from(["", "T:2105", "X:1000", "C"]))
def test_format_then_parse_gives_the_call_back(seed, start, layout, twelve, call_id, transfer):
    # fold=0: in the autumn DST overlap a wall-clock record cannot say which 01:30 it was; parsers take
    # the first.
    call = generate_call(random.Random(seed), start.replace(tzinfo=TORONTO, fold=0), EXTENSIONS, TRUNKS)
    call = replace(call, call_id=call_id, transfer=transfer)
    options = MitelOptions(layout=layout, twelve_hour_clock=twelve)
    raw = format_record(call, options)
    assert raw.endswith(b"\r\n")
    received = ParseContext(tz=TORONTO, received_at=call.start + timedelta(seconds=call.duration + 90))
    parsed = parse_record(raw[:-2], options, received)
    assert isinstance(parsed, CallRecord), parsed
    assert parsed.raw == raw[:-2]
    assert call_fields(parsed) == call_fields(expected_after_round_trip(call, layout))
    # and the layout is found from the line alone
    assert call_fields(parse_record(raw[:-2], MitelOptions(twelve_hour_clock=twelve), received)) == \
        call_fields(parsed)


def test_default_format_matches_the_real_layout():
    capture = load_capture("mitel_mivb")
    for line, expected in zip(capture.data.splitlines(), capture.expected, strict=True):
        call = parse(line)
        written = format_record(call, OPTIONS)
        assert len(written) == 207 + 2
        assert call_fields(parse(written[:-2])) == expected
        # the columns the format carries are where the PBX put them
        for a, b in ((2, 40), (42, 62), (68, 76), (108, 133), (154, 163)):
            assert written[a - 1:b] == line[a - 1:b], (a, b)


def test_format_refuses_what_does_not_fit():
    call = parse(standard_line())
    with pytest.raises(ValueError, match="extension|calling"):
        format_record(replace(call, extension="12345"), MitelOptions(layout="standard"))
    with pytest.raises(ValueError, match="tandem"):
        format_record(replace(call, direction="tandem"), OPTIONS)


def test_format_names_a_numbered_trunk_the_mitel_way():
    call = parse(standard_line())
    assert parse(format_record(replace(call, trunk="3"), OPTIONS)[:-2]).trunk == "T3"


# ---------------------------------------------------------------- every record width and its options

WIDTH_OPTIONS = [
    (90, {"layout": "standard", "ani_dnis": False, "network_oli": False}),
    (101, {"layout": "extended", "ani_dnis": False, "network_oli": False}),
    (112, {"layout": "standard", "ani_dnis": True, "network_oli": False}),
    (120, {"layout": "extended", "ani_dnis": True, "network_oli": False}),
    (131, {"layout": "standard", "ani_dnis": True, "network_oli": True}),
    (139, {"layout": "extended", "ani_dnis": True, "network_oli": True}),
    (162, {"layout": "reporting", "reporting_level": 1, "network_oli": False}),
    (169, {"layout": "reporting", "reporting_level": 1, "network_oli": True}),
    (195, {"layout": "reporting", "reporting_level": 2, "network_oli": False}),
    (207, {"layout": "reporting", "reporting_level": 2, "network_oli": True}),
]


@pytest.mark.parametrize("width, settings_", WIDTH_OPTIONS, ids=[str(w) for w, _ in WIDTH_OPTIONS])
def test_every_record_width_from_its_options(width, settings_):
    options = REGISTRY.options("pbx", "mitel_mivb", settings_)
    calls = [CallRecord(start=datetime(2024, 3, 5, 22, 15, 7, tzinfo=TORONTO), duration=125, ring=None,
                        extension="2101", trunk="T801", dialled="2125550134", caller="", direction="outgoing",
                        answered=True, account_code="1234", call_id="A0011234", transfer="T:2105"),
             CallRecord(start=datetime(2024, 3, 5, 9, 2, 30, tzinfo=TORONTO), duration=61, ring=12,
                        extension="2102", trunk="X12", dialled="4100", caller="2125550188",
                        direction="incoming",
                        answered=True, call_id="A0011235")]
    for call in calls:
        raw = format_record(call, options)[:-2]
        assert len(raw) == width
        parsed = parse(raw)  # the layout is found from the line itself
        expected = replace(
            call, start=call.start if width in (195, 207) else call.start.replace(second=0),
            caller=call.caller if settings_.get("ani_dnis", True) else "",
            call_id=call.call_id if settings_.get("network_oli", True) else "")
        assert call_fields(parsed) == call_fields(expected), width


def test_long_call_flags_are_written_by_duration():
    call = parse(standard_line())
    flags = [format_record(replace(call, duration=seconds), MitelOptions(layout="standard"))[:1]
             for seconds in (299, 300, 600, 1800)]
    assert flags == [b" ", b"-", b"%", b"+"]
