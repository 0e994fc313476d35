"""NEC SV9300/SV9500 NEAX SMDR: NEC's test records (KK, KL, KM) through the link, the flexible TLV and
the normal (KA) layout, the request / block / ACK exchange sans-IO and against a fake PBX on loopback
(ACK with sequence and parity, a repeated block, a parity error, a drop mid-block), and round trips."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.errors import ConfigError, ProtocolError
from appliance.events import CallRecord, Ignored, LinkDown, RecordReceived
from appliance.registry import validate_spec
from pbx_drivers.callgen import generate_call
from pbx_drivers.neax_link import ACK, NeaxLink, ack, data_block, message, parity, request, status_monitor
from pbx_drivers.nec_sv9500 import SPEC, NecNeaxOptions, format_record, parse_record, tlv
from tests.pbx_drivers import REGISTRY, SPLITS, call_fields, check_any_split, check_capture, load_capture
from tests.pbx_drivers.loopback import FakePbx, drive, read_exact

NEW_YORK = ZoneInfo("America/New_York")
CONTEXT = ParseContext(tz=NEW_YORK, received_at=datetime(2019, 9, 9, tzinfo=NEW_YORK))
FRAMES = NecNeaxOptions(protocol="frames")


def records() -> list[bytes]:
    return [line.strip(b"\x02\x03\r") for line in load_capture("nec_sv9500").data.splitlines()]


def test_spec_and_options():
    assert validate_spec(SPEC) == [] and SPEC.default_port == 60010
    with pytest.raises(ConfigError, match="device must be"):
        REGISTRY.options("pbx", "nec_sv9500", {"device": 4})


@pytest.mark.parametrize("split", SPLITS)
def test_capture_through_the_link(split):
    check_capture(load_capture("nec_sv9500"), split, trailing=b"\x020!KK0112001010")


@settings(max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_any_split_of_the_capture(cuts):
    check_any_split(load_capture("nec_sv9500"), cuts)


def test_the_kk_sample_item_by_item():
    items = tlv(records()[0].decode()[4:])
    assert items["01"] == "001010052210" and items["06"][:14] == "20180707120000"
    assert (items["07"], items["10"], items["12"], items["16"]) == ("7325551212", "17325551212", "8675309",
                                                                   "117325551212")
    call = parse_record(records()[0], FRAMES, CONTEXT)
    assert (call.duration, call.trunk, call.extension, call.account_code) == (3661, "010-052", "20001",
                                                                              "7325551212")


def test_normal_format_ka_record_with_year_and_continued_billing():
    body = ("010052" + "0" + "00" + "2101  " + "0314101500" + "0314101705" + "1234".ljust(10) + "   "
            + "200" + " " * 6 + "2125550134".ljust(24) + " " * 30 + "2525")
    record = b"0!KA" + body.encode()
    assert record[13:19] == b"2101  " and record[115:119] == b"2525"
    call = parse_record(record, FRAMES, CONTEXT)
    assert call.start == datetime(2025, 3, 14, 10, 15, tzinfo=NEW_YORK)
    assert (call.duration, call.extension, call.trunk, call.dialled) == (125, "2101", "010-052", "2125550134")
    assert (call.transfer, call.call_id, call.account_code) == ("continued", "trunk:010-052", "1234")


@pytest.mark.parametrize("record, reason", [
    (b"0!ZZ0112", "type 'ZZ'"),
    (b"garbage", "not a NEAX SMDR record"),
    (b"0!KK0112001010052210", "without its start/end times"),
    (b"0!KK01x2", "do not add up"),
    (b"0!KK06342018070713000000120180707120000000", "ends"),
])
def test_garbage_is_quarantined_with_the_reason(record, reason):
    result = parse_record(record, FRAMES, CONTEXT)
    assert isinstance(result, Ignored) and result.quarantine and reason in result.reason


@given(st.binary(max_size=200))
def test_parse_record_never_raises(data):
    assert isinstance(parse_record(data, FRAMES, CONTEXT), (CallRecord, Ignored))


# ---------------------------------------------------------------- the NEAX exchange, sans-IO


def test_message_bytes_match_zombats_tables():
    assert request(0) == bytes([0x16, 0x31, 0x30, 0x30, 0x30, 0x30, 0x32, 0x30, 0x30, 0x06])
    assert ack(0, b"0")[-1] == 0x36 and ack(0, b"8")[-1] == 0x3E  # parity = sequence XOR 0x06
    assert status_monitor(0)[-1] == 0x06 and status_monitor(1)[-1] == 0x07  # zombat's keep-alive table
    assert message(b"5", b"0000" + bytes([ACK])) == status_monitor(0)


def test_request_block_ack_repeat_and_polling():
    link = NeaxLink(device=1, poll_interval=5.0, silence_timeout=30.0)
    link.connection_made(0.0)
    assert link.data_to_send() == request(1)
    block = data_block(1, 3, records()[:2])
    events = link.receive_data(block, 1.0)
    assert [event.raw for event in events] == records()[:2]
    assert link.data_to_send() == ack(1, b"3")
    again = link.receive_data(block, 2.0)  # our ACK was lost: the PBX sends block 3 again
    assert again == [Ignored(reason="block 3 sent again (our ACK was lost)", raw=block[7:-1],
                             quarantine=False)]
    assert link.data_to_send() == ack(1, b"3")
    assert link.deadline() == 5.0
    assert link.handle_timeout(5.0) == [] and link.data_to_send() == request(1)
    with pytest.raises(ProtocolError, match="no message from the PBX for 30 s"):
        link.handle_timeout(32.0)


def test_parity_error_is_quarantined_and_not_acknowledged():
    link = NeaxLink()
    link.connection_made(0.0)
    link.data_to_send()
    block = bytearray(data_block(0, 1, records()[:1]))
    block[-1] ^= 0xFF
    events = link.receive_data(bytes(block), 1.0)
    assert len(events) == 1 and events[0].quarantine and "parity" in events[0].reason
    assert link.data_to_send() == b""


def test_drop_inside_a_block():
    link = NeaxLink()
    link.connection_made(0.0)
    block = data_block(0, 1, records()[:1])
    assert link.receive_data(block[:40], 1.0) == []
    events = link.connection_lost(2.0)
    assert events == [Ignored(reason="connection lost inside an SMDR block", raw=block[1:40]),
                      LinkDown(reason="connection closed")]


# ---------------------------------------------------------------- against a fake PBX on loopback


def neax_pbx(blocks: list[bytes], *, drop_after: bytes = b"", acks: list[bytes] | None = None):
    def script(connection):
        assert read_exact(connection, len(request(0))) == request(0)
        for block in blocks:
            connection.sendall(block)
            if block[1:2] == b"2" and block[-1] == parity(block[1:-1]):
                answer = read_exact(connection, len(ack(0, b"0")))
                if acks is not None:
                    acks.append(answer)
        connection.sendall(message(b"3", b"001"))  # status: buffer empty
        connection.sendall(drop_after)
    return script


def test_exchange_over_loopback():
    acks: list[bytes] = []
    blocks = [data_block(0, 1, records()[:2]), data_block(0, 1, records()[:2]), data_block(0, 2,
                                                                                           records()[2:])]
    with FakePbx(neax_pbx(blocks, acks=acks)) as pbx:
        events = drive(SPEC.make_link(NecNeaxOptions()), pbx.port,
                       until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
    assert [event.raw for event in events if isinstance(event, RecordReceived)] == records()
    assert acks == [ack(0, b"1"), ack(0, b"1"), ack(0, b"2")]
    assert events[-1] == LinkDown(reason="connection closed")


def test_drop_mid_block_over_loopback():
    cut = data_block(0, 2, records()[2:])[:50]
    with FakePbx(neax_pbx([data_block(0, 1, records()[:1])], drop_after=cut)) as pbx:
        events = drive(SPEC.make_link(NecNeaxOptions()), pbx.port,
                       until=lambda ev: any(isinstance(e, LinkDown) for e in ev))
    assert [event.raw for event in events if isinstance(event, RecordReceived)] == records()[:1]
    assert Ignored(reason="connection lost inside an SMDR block", raw=cut[1:]) in events


# ---------------------------------------------------------------- format_record round trips


@settings(max_examples=200)
@given(seed=st.integers(min_value=0, max_value=2 ** 32),
       start=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2060, 12, 31)),
       trunk=st.sampled_from(["010-052", "001-023", "7"]), continued=st.booleans())
def test_format_then_parse_gives_the_call_back(seed, start, trunk, continued):
    utc = ZoneInfo("UTC")
    call = generate_call(random.Random(seed), start.replace(tzinfo=utc), ("20001", "2101", "101"), (trunk,))
    if continued and call.direction != "internal":
        call = replace(call, transfer="continued", call_id=f"trunk:{call.trunk}")
    raw = format_record(call, FRAMES)
    assert raw[:1] == b"\x02" and raw[-1:] == b"\x03"
    parsed = parse_record(raw[1:-1], FRAMES, ParseContext(tz=utc, received_at=call.start))
    assert isinstance(parsed, CallRecord), parsed
    # the record has no ring time; an unanswered call has no talk time either way
    assert call_fields(parsed) == call_fields(replace(call, ring=None))
