"""Mitel 5000 / Inter-Tel Axxess: the real capture (serial lines and as length-prefixed TCP records), the
socket login against a fake PBX on loopback (good and wrong password, a drop mid-record), quarantine
reasons and format -> parse round trips."""

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
from appliance.events import CallRecord, Ignored, LinkDown, LinkUp, RecordReceived
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.mitel_5000 import (
    SPEC,
    Mitel5000Link,
    Mitel5000Options,
    format_record,
    login_bytes,
    parse_record,
)
from tests.pbx_drivers import (
    REGISTRY,
    SPLITS,
    call_fields,
    calls_only,
    check_any_split,
    check_capture,
    load_capture,
    parse_capture,
    quarantined,
)
from tests.pbx_drivers.loopback import FakePbx, drive, read_exact

CHICAGO = ZoneInfo("America/Chicago")
CONTEXT = ParseContext(tz=CHICAGO, received_at=datetime(2012, 7, 3, 12, 0, tzinfo=CHICAGO))
LINES = Mitel5000Options(framing="lines", login=False)
TLC = b"TLC 104   94151 952-474-1742                 08:52    S=226 $00.00              "


def prefixed(line: bytes) -> bytes:
    body = line + b"\r\n"
    return len(body).to_bytes(4, "little") + body


def test_spec_and_options():
    assert validate_spec(SPEC) == [] and SPEC.default_port == 4000
    assert REGISTRY.get("pbx", "mitel_5000") is SPEC
    with pytest.raises(ConfigError, match="15 ASCII"):
        REGISTRY.options("pbx", "mitel_5000", {"password": "x" * 16})


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_serial_link(split):
    check_capture(load_capture("mitel_5000"), split, trailing=b"TLC 104   94151 952-4")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=900), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("mitel_5000"), cuts)


@pytest.mark.parametrize("bytewise", [False, True])
def test_capture_as_length_prefixed_tcp_records(bytewise):
    capture = load_capture("mitel_5000")
    stream = b"".join(prefixed(line) for line in capture.data.splitlines())
    # 80 columns + CR LF = 82 ("R"), the 79-column header 81 ("Q"): the prefixes fmahnke's client strips
    assert stream[:4] == b"Q\x00\x00\x00" and prefixed(TLC)[:4] == b"R\x00\x00\x00"
    tcp = replace(capture, options=Mitel5000Options(login=False))
    chunks = [stream[i:i + 1] for i in range(len(stream))] if bytewise else [stream]
    results = parse_capture(tcp, chunks)
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    assert quarantined(results) == []


def test_outgoing_and_ring_records_field_by_field():
    call = parse_record(TLC, LINES, CONTEXT)
    assert call == CallRecord(start=datetime(2012, 7, 3, 8, 52, tzinfo=CHICAGO), duration=226, ring=None,
                              extension="104", trunk="94151", dialled="9524741742", caller="",
                              direction="outgoing", answered=True, raw=TLC)
    ring = parse_record(load_capture("mitel_5000").data.splitlines()[2], LINES, CONTEXT)
    assert (ring.extension, ring.caller, ring.dialled, ring.ring, ring.answered) == (
        "", "6128044082", "8907", 5, False)


def test_elapsed_in_hh_mm_ss_and_truncated_digits():
    line = TLC.replace(b"   S=226", b"00:03:46").replace(b"952-474-1742 ", b"952-474-1742>")
    call = parse_record(line, LINES, CONTEXT)
    assert (call.duration, call.dialled) == (226, "9524741742")


def test_a_record_just_before_midnight_read_after_it_is_yesterdays():
    after_midnight = ParseContext(tz=CHICAGO, received_at=datetime(2012, 7, 4, 0, 2, tzinfo=CHICAGO))
    call = parse_record(TLC.replace(b"08:52", b"23:59"), LINES, after_midnight)
    assert call.start == datetime(2012, 7, 3, 23, 59, tzinfo=CHICAGO)


def test_headers_are_not_quarantined():
    for line in load_capture("mitel_5000").data.splitlines()[:2]:
        assert parse_record(line, LINES, CONTEXT).quarantine is False


@pytest.mark.parametrize("line, reason", [
    (b"garbage", "no START"),
    (TLC.replace(b"TLC", b"XYZ"), "call type 'XYZ'"),
    (TLC.replace(b"104  ", b"1A4  "), "extension '1A4'"),
    (TLC.replace(b"952-474", b"952/474"), "does not dial"),
    (TLC.replace(b"08:52", b"28:52"), "not a time of day"),
    (TLC[:20] + b"\x00" + TLC[21:], "byte 0x00"),
])
def test_garbage_is_quarantined_with_the_reason(line, reason):
    result = parse_record(line, LINES, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=120))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, LINES, CONTEXT), (CallRecord, Ignored))


# ---------------------------------------------------------------- the socket login (sans-IO, then loopback)


def test_login_bytes_match_the_documented_example():
    assert login_bytes("12345678") == bytes.fromhex("0A000000 84 3132333435363738 00")
    assert login_bytes("") == b"\x02\x00\x00\x00\x84\x00"


def test_link_sends_the_login_and_splits_records():
    link = Mitel5000Link(Mitel5000Options(password="1234"))
    assert link.connection_made(0.0) == [LinkUp(detail="SMDR login sent")]
    assert link.data_to_send() == login_bytes("1234")
    events = link.receive_data(prefixed(TLC) + prefixed(TLC)[:10], 1.0)
    assert events == [RecordReceived(raw=TLC)]
    assert link.connection_lost(2.0) == [
        Ignored(reason="stream ended inside a length-prefixed record", raw=prefixed(TLC)[:10]),
        LinkDown(reason="connection closed")]


def pbx_script(password: bytes, records: list[bytes], *, drop_after: bytes = b""):
    def script(connection):
        head = read_exact(connection, 4)
        login = head + read_exact(connection, int.from_bytes(head, "little"))
        if login != login_bytes(password.decode()):
            return  # a 5000 CP with another password just hangs up
        for record in records:
            connection.sendall(prefixed(record))
        if drop_after:
            connection.sendall(drop_after)
    return script


def test_login_over_loopback_then_records():
    with FakePbx(pbx_script(b"secret", [TLC, TLC.replace(b"104", b"116")])) as pbx:
        link = SPEC.make_link(Mitel5000Options(password="secret"))
        events = drive(link, pbx.port, until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
    raws = [event.raw for event in events if isinstance(event, RecordReceived)]
    assert [parse_record(raw, LINES, CONTEXT).extension for raw in raws] == ["104", "116"]
    assert events[-1] == LinkDown(reason="connection closed")


def test_wrong_password_over_loopback_is_reported():
    with FakePbx(pbx_script(b"secret", [TLC])) as pbx:
        events = drive(SPEC.make_link(Mitel5000Options(password="guess")), pbx.port,
                       until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
    assert not [event for event in events if isinstance(event, RecordReceived)]
    assert events[-1] == LinkDown(
        reason="the PBX closed the connection before sending a record: check the SMDR password")


def test_pbx_dropping_the_connection_mid_record_over_loopback():
    cut = prefixed(TLC)[:30]
    with FakePbx(pbx_script(b"", [TLC], drop_after=cut)) as pbx:
        events = drive(SPEC.make_link(Mitel5000Options()), pbx.port,
                       until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
    assert [event.raw for event in events if isinstance(event, RecordReceived)] == [TLC]
    assert Ignored(reason="stream ended inside a length-prefixed record", raw=cut) in events
    assert events[-1] == LinkDown(reason="connection closed")


# ---------------------------------------------------------------- format_record round trips

EXTENSIONS = ("104", "110", "116", "181")
TRUNKS = ("94151", "94129")


def expected_after_round_trip(call: CallRecord) -> CallRecord:
    """START has minutes only; an incoming record has no ring time, a ring record no talk time."""
    start = call.start.replace(second=0)
    if call.direction == "incoming":
        return replace(call, start=start, ring=call.ring if not call.answered else None)
    return replace(call, start=start)


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2005, 1, 1), max_value=datetime(2040, 12, 31)),
       framing=st.sampled_from(["lines", "length-prefixed"]), seconds_mode=st.booleans())
def test_format_then_parse_gives_the_call_back(seed, start, framing, seconds_mode):
    call = generate_call(random.Random(seed), start.replace(tzinfo=CHICAGO, fold=0), EXTENSIONS, TRUNKS)
    options = Mitel5000Options(framing=framing, seconds_mode=seconds_mode, login=False)
    raw = format_record(call, options)
    if call.direction == "internal":
        assert raw == b""
        return
    link = SPEC.make_link(options)
    events = [event for event in link.receive_data(raw, 0.0) if isinstance(event, RecordReceived)]
    received = ParseContext(tz=CHICAGO, received_at=call.start + timedelta(seconds=call.duration + 60))
    parsed = parse_record(events[0].raw, options, received)
    assert isinstance(parsed, CallRecord), parsed
    assert call_fields(parsed) == call_fields(expected_after_round_trip(call))


def test_format_matches_the_real_columns():
    call = parse_record(TLC, LINES, CONTEXT)
    written = format_record(call, LINES)
    # the call type is worked out from the number (the record does not keep TLC vs LOC): columns match
    assert written.rstrip(b"\r\n") == TLC.replace(b"952-474-1742", b"9524741742  ").replace(b"TLC", b"LOC")
