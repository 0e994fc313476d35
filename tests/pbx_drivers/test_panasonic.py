"""Panasonic KX-TD/TDA/NS: the manual's printout and the emulator's page header, end-of-call times on a
12-hour clock, day/month order, transfer and hotel-event lines, the telnet SMDR login against a fake PBX
on loopback (right and wrong password, telnet negotiation, a drop mid-record) and round trips."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.errors import ConfigError, ProtocolError
from appliance.events import CallRecord, Ignored, LinkDown, LinkUp, RecordReceived
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.links import LoginState
from pbx_drivers.panasonic import SPEC, PanasonicLink, PanasonicOptions, format_record, parse_record
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture
from tests.pbx_drivers.loopback import FakePbx, drive, read_until

NEW_YORK = ZoneInfo("America/New_York")
CONTEXT = ParseContext(tz=NEW_YORK, received_at=datetime(2024, 6, 25, 12, 0, tzinfo=NEW_YORK))
FILE = PanasonicOptions(login=False)
RECORD = b"06/24/24 10:11AM 18    02 0924312111           0'05 00:03'02 1234       TR"


def test_spec_and_options():
    assert validate_spec(SPEC) == [] and SPEC.default_port == 2300
    assert REGISTRY.get("pbx", "panasonic") is SPEC
    with pytest.raises(ConfigError, match="mdy or dmy"):
        REGISTRY.options("pbx", "panasonic", {"date_order": "ymd"})


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("panasonic"), split, trailing=b"06/24/97 10:2")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=700), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("panasonic"), cuts)


def test_fixed_width_record_with_ring_account_and_transfer():
    call = parse_record(RECORD, FILE, CONTEXT)
    assert call == CallRecord(start=datetime(2024, 6, 24, 10, 7, 58, tzinfo=NEW_YORK), duration=182, ring=5,
                              extension="18", trunk="02", dialled="0924312111", caller="",
                              direction="outgoing",
                              answered=True, account_code="1234", transfer="TR", raw=RECORD)


def test_day_month_order_and_24_hour_clock():
    line = b"24/06/24 22:11   18    02 0924312111                00:03'02"
    call = parse_record(line, PanasonicOptions(login=False, date_order="dmy"), CONTEXT)
    assert call.start == datetime(2024, 6, 24, 22, 7, 58, tzinfo=NEW_YORK)
    assert isinstance(parse_record(line, FILE, CONTEXT), Ignored)  # month 24 does not exist


def test_twelve_am_is_midnight_and_start_time_option():
    line = b"06/24/24 12:05AM 18    02 0924312111                00:01'00"
    assert parse_record(line, FILE, CONTEXT).start == datetime(2024, 6, 24, 0, 4, tzinfo=NEW_YORK)
    start = parse_record(line, PanasonicOptions(login=False, time_is="start"), CONTEXT).start
    assert start == datetime(2024, 6, 24, 0, 5, tzinfo=NEW_YORK)


def test_incoming_ddi_intercom_and_unanswered():
    ddi = parse_record(b"06/24/24 10:11AM 18    02 <D>5551234                  00:01'00", FILE, CONTEXT)
    assert (ddi.direction, ddi.dialled, ddi.caller) == ("incoming", "5551234", "")
    name = parse_record(b"06/24/24 10:11AM 18    02 <I>JOHN SMITH        0'12 00:00'00            NA", FILE,
                        CONTEXT)
    assert (name.caller, name.ring, name.answered) == ("JOHN SMITH", 12, False)
    icm = parse_record(b"06/24/24 10:11AM 18       EXT1235                       00:00'40", FILE, CONTEXT)
    assert (icm.direction, icm.dialled, icm.trunk) == ("internal", "1235", "")


def test_transferred_mark_before_the_time_and_masked_digits():
    call = parse_record(b"06/24/24 *10:11AM 18    02 09243XXXX                  00:03'02", FILE, CONTEXT)
    assert (call.transfer, call.dialled) == ("*", "09243XXXX")


@pytest.mark.parametrize("line", [
    b"  Date     Time    Ext CO        Dial Number        Ring Duration  Acc code  CD ",
    b"-" * 80, b"", b"06/24/24 10:11AM 18       Check in", b"06/24/24 10:12AM 18       LOG OUT",
])
def test_headers_and_hotel_events_are_not_quarantined(line):
    result = parse_record(line, FILE, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine is False


@pytest.mark.parametrize("line, reason", [
    (b"**/**/** **:****  18    02 0924312111                00:03'02", "clock was changed"),
    (b"06/31/24 10:11AM 18 02 0924312111 00:03'02", "calendar date"),
    (b"06/24/24 10:11AM 18 02 09243$2111 00:03'02", "does not dial"),
    (b"Panasonic KX-TDA", "not a Panasonic SMDR record"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, FILE, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=120))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, FILE, CONTEXT), (CallRecord, Ignored))


# ---------------------------------------------------------------- the SMDR login


def feed(link, data: bytes, now: float = 1.0):
    return link.receive_data(data, now)


def test_login_dialogue_sans_io():
    link = PanasonicLink(PanasonicOptions(password="hotel"))
    assert link.connection_made(0.0) == [LinkUp(detail="connected, logging in to SMDR")]
    assert link.data_to_send() == b"SMDR\r\n"
    assert feed(link, b"\xff\xfb\x01\xff\xfd\x03-\r\nSMDR\r\nEnter Pass") == []
    assert link.data_to_send() == b"\xff\xfe\x01\xff\xfc\x03"  # telnet options refused
    assert feed(link, b"word: ") == [] and link.data_to_send() == b"hotel\r\n"
    assert link.state is LoginState.VERDICT
    events = feed(link, b"\r\n" + RECORD + b"\r\n")
    assert events == [LinkUp(detail="SMDR login accepted"), RecordReceived(raw=RECORD)]
    assert link.state is LoginState.STREAMING


def test_wrong_password_sans_io():
    link = PanasonicLink(PanasonicOptions(password="guess"))
    link.connection_made(0.0)
    feed(link, b"Enter Password: ")
    assert feed(link, b"\r\nPassword Error\r\n") == [LinkDown(reason="the PBX refused the SMDR password")]
    assert link.wants_close and link.state is LoginState.REFUSED
    assert link.connection_lost(2.0) == [LinkDown(reason="the PBX refused the SMDR password")]


def test_no_prompt_is_a_protocol_error_and_silence_after_the_password_is_success():
    link = PanasonicLink(PanasonicOptions(login_timeout=5.0))
    link.connection_made(0.0)
    assert link.deadline() == 5.0
    with pytest.raises(ProtocolError, match="no SMDR password prompt"):
        link.handle_timeout(5.0)
    quiet = PanasonicLink(PanasonicOptions(login_timeout=5.0))
    quiet.connection_made(0.0)
    feed(quiet, b"Enter Password:", 1.0)
    assert quiet.handle_timeout(6.0) == [LinkUp(detail="SMDR login accepted")]
    assert quiet.deadline() is None


def panasonic_pbx(password: bytes, records: list[bytes], *, drop_after: bytes = b""):
    def script(connection):
        connection.sendall(b"\xff\xfd\x18\xff\xfb\x01-")  # DO TERMINAL-TYPE, WILL ECHO, prompt
        read_until(connection, b"SMDR\r\n")
        for _ in range(3):
            connection.sendall(b"Enter Password:")
            typed = re.sub(rb"\xff[\xfb-\xfe].", b"", read_until(connection, b"\r\n")).strip()
            if typed == password:  # (the collector's refusals of our telnet options come first)
                break
        else:
            connection.sendall(b"\r\nPassword Error\r\n")
            read_until(connection, b"\r\n")
            return
        connection.sendall(b"\r\n")
        for record in records:
            connection.sendall(record + b"\r\n")
        connection.sendall(drop_after)
    return script


def until_down(events):
    return any(isinstance(event, LinkDown) for event in events)


def test_login_over_loopback():
    with FakePbx(panasonic_pbx(b"PCCSMDR", [RECORD, RECORD.replace(b"18 ", b"19 ")])) as pbx:
        events = drive(SPEC.make_link(PanasonicOptions()), pbx.port, until=until_down)
    raws = [event.raw for event in events if isinstance(event, RecordReceived)]
    assert [parse_record(raw, FILE, CONTEXT).extension for raw in raws] == ["18", "19"]
    assert LinkUp(detail="SMDR login accepted") in events
    assert events[-1] == LinkDown(reason="connection closed")


def test_wrong_password_over_loopback():
    def script(connection):
        read_until(connection, b"SMDR\r\n")
        connection.sendall(b"Enter Password:")
        read_until(connection, b"\r\n")
        connection.sendall(b"\r\nEnter Password:")  # the prompt again: wrong password
        connection.recv(100)  # the collector hangs up instead of guessing
    with FakePbx(script) as pbx:
        events = drive(SPEC.make_link(PanasonicOptions(password="guess")), pbx.port, until=until_down)
    assert not [event for event in events if isinstance(event, RecordReceived)]
    assert events[-1] == LinkDown(reason="the PBX refused the SMDR password")


def test_pbx_dropping_mid_record_over_loopback():
    with FakePbx(panasonic_pbx(b"PCCSMDR", [RECORD], drop_after=RECORD[:25])) as pbx:
        events = drive(SPEC.make_link(PanasonicOptions()), pbx.port, until=until_down)
    raws = [event.raw for event in events if isinstance(event, RecordReceived)]
    assert raws == [RECORD, RECORD[:25]]
    cut = parse_record(raws[-1], FILE, CONTEXT)
    assert isinstance(cut, Ignored) and cut.quarantine  # the cut record is quarantined, not lost silently
    assert events[-1] == LinkDown(reason="connection closed")


# ---------------------------------------------------------------- format_record round trips


def expected_after_round_trip(call: CallRecord, time_is: str) -> CallRecord:
    """The printed time has minutes only: the start is worked back from it. One CD column: an
    unanswered incoming call prints NA, not its transfer code."""
    if call.direction == "incoming" and not call.answered:
        call = replace(call, transfer="")  # one CD column: NA (not answered) wins over TR/FW
    if time_is == "start":
        return replace(call, start=call.start.replace(second=0))
    end = (call.start + timedelta(seconds=call.duration)).replace(second=0)
    return replace(call, start=end - timedelta(seconds=call.duration))


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       date_order=st.sampled_from(["mdy", "dmy"]), time_is=st.sampled_from(["start", "end"]),
       twelve=st.booleans(), transfer=st.sampled_from(["", "TR", "FW"]))
def test_format_then_parse_gives_the_call_back(seed, start, date_order, time_is, twelve, transfer):
    utc = ZoneInfo("UTC")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("11", "101", "2101"), ("1", "2"))
    call = replace(call, transfer=transfer)
    options = PanasonicOptions(login=False, date_order=date_order, time_is=time_is, twelve_hour_clock=twelve)
    raw = format_record(call, options)
    received = ParseContext(tz=utc, received_at=call.start + timedelta(seconds=call.duration + 60))
    parsed = parse_record(raw.rstrip(b"\r\n"), options, received)
    assert isinstance(parsed, CallRecord), (raw, parsed)
    assert call_fields(parsed) == call_fields(expected_after_round_trip(call, time_is))
