"""Conformance, FIAS §1 serial RS-232 line protocol (Spec p.91-97, FAQ p.110; fias.md §1 "Serial").

LRC after ETX; the receiver answers ACK or NAK within 3 s; a NAK makes the sender resend (4 attempts in
all); no answer -> ENQ, the receiver repeats its last ACK/NAK and the record is not resent; any character
other than ENQ resets the stored last response to NAK; an ENQ at start-up is answered NAK. The
transport decides the defaults: serial = LRC + ACK/NAK on, TCP = off, either switch may be set.
Receiver dialogues run whole, byte by byte and with trailing bytes.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from appliance.events import Ignored, LinkDown, PostCharge, PostingAnswered, PostingUnanswered
from appliance.framing import ACK, ENQ, NAK, frame
from pms_drivers.fias.link import FiasLink, FiasOptions
from tests.pms_drivers.fias_helpers import MODES, T0, UTC, alive_link

SERIAL = FiasOptions().for_transport("serial")
CHARGE = PostCharge(sequence=7, room="0412", amount_minor=1275, start=datetime(2025, 3, 14, 10, 12, 3))


@pytest.fixture(params=[m for m in MODES if m != "trailing"])
def mode(request):
    """Whole and byte by byte. Trailing bytes of an unfinished frame are their own rule on a serial
    line: the sender's ENQ abandons them (``test_enq_repeats_...``)."""
    return request.param


def test_transport_decides_the_defaults_and_the_yaml_may_override():
    """§1: LRC and ACK/NAK "only apply to asynchronous serial connections" (p.22, p.25); some TCP peers
    switch them on (NetX Protel, an Electron gateway)."""
    assert (SERIAL.lrc, SERIAL.ack_nak) == (True, True)
    tcp = FiasOptions().for_transport("tcp-client")
    assert (tcp.lrc, tcp.ack_nak) == (False, False)
    switched = FiasOptions(lrc=True, ack_nak=True).for_transport("tcp-client")
    assert (switched.lrc, switched.ack_nak) == (True, True)
    assert FiasLink(FiasOptions()).options.lrc is False  # built without a transport: TCP


def test_receiver_acks_good_frames_and_naks_a_bad_lrc(mode):
    """p.93-94: every frame is answered at once (well within 3 s): ACK when the LRC is right, NAK when not."""
    link, wire = alive_link(mode, SERIAL)
    link.data_to_send()
    good = frame(b"GO|RN0413|", with_lrc=True)
    bad = good[:-1] + bytes([good[-1] ^ 0x40])
    events = wire.raw(bad + good, T0)
    assert isinstance(events[0], Ignored) and "bad LRC" in events[0].reason
    assert events[1].room == "0413"
    answers = link.data_to_send().replace(b"\x02ZZ|\x03", b"")
    assert answers.replace(bytes([ACK]) * 2, bytes([ACK])).startswith(bytes([NAK, ACK]))


def test_enq_repeats_the_last_response_and_any_other_char_resets_it_to_nak(mode):
    """p.95: ENQ -> the last ACK/NAK again; a character other than ENQ resets "last response" to NAK,
    which is what keeps a half-received record from being taken as acknowledged."""
    link, wire = alive_link(mode, SERIAL)
    link.data_to_send()
    wire.raw(frame(b"GO|RN0413|", with_lrc=True), T0)
    link.data_to_send()
    link.receive_data(bytes([ENQ]), T0)
    assert link.data_to_send() == bytes([ACK])  # the last response was ACK
    link.receive_data(b"\x02GO|RN", T0)  # part of a frame, then the sender gives up and asks
    link.receive_data(bytes([ENQ]), T0)
    assert link.data_to_send() == bytes([NAK])


def test_enq_at_startup_is_answered_nak():
    """FAQ p.110: half duplex is obsolete; an ENQ at start-up gets NAK."""
    link = FiasLink(SERIAL, tz=UTC)
    link.connection_made(T0)
    link.receive_data(bytes([ENQ]), T0)
    assert link.data_to_send() == bytes([NAK])


def test_nak_then_ack_sends_the_record_twice_and_posts_once():
    """p.94: a NAK makes the sender repeat the frame; the ACK of the repeat ends it. The PMS booked only
    the copy it acknowledged; the PA then answers the posting once."""
    link, wire = alive_link(options=SERIAL)
    link.data_to_send()
    link.send(CHARGE, T0)
    first = link.data_to_send()
    link.receive_data(bytes([NAK]), T0 + 1)
    assert link.data_to_send() == first  # the same record again
    link.receive_data(bytes([ACK]), T0 + 1.5)
    assert link.data_to_send() == b"" and link.in_flight == 7
    events = wire.pms("PA|ASOK|P#7|", now=T0 + 2)
    assert [(type(e), e.sequence) for e in events] == [(PostingAnswered, 7)]


def test_no_answer_gives_enq_not_a_resend_and_the_repeated_ack_completes():
    """p.95 + fias.md §8 item 1: no ACK within 3 s -> ENQ (the record is not resent); the PMS repeats its
    ACK (it had booked the PS, only its ACK was lost) and the link goes on."""
    link, _ = alive_link(options=SERIAL)
    link.data_to_send()
    link.send(CHARGE, T0)
    link.data_to_send()
    assert link.deadline() == T0 + 3.0
    link.handle_timeout(T0 + 3.0)
    assert link.data_to_send() == bytes([ENQ])
    link.receive_data(bytes([ACK]), T0 + 3.2)
    assert link.data_to_send() == b"" and link.in_flight == 7


def test_four_attempts_then_the_outcome_says_what_is_known():
    """p.94-95: 3 retries, 4 attempts. NAK on every copy = refused, not booked (UR, never resent);
    silence after the last ENQ = unknown (unanswered, never resent). Either way the link is reset."""
    link, _ = alive_link(options=SERIAL)
    link.data_to_send()
    link.send(CHARGE, T0)
    events = []
    for _ in range(4):
        events += link.receive_data(bytes([NAK]), T0 + 1)
    assert link.data_to_send().count(b"\x02PS|") == 4
    assert isinstance(events[0], PostingAnswered) and events[0].status == "UR"
    assert isinstance(events[1], LinkDown) and link.wants_close

    link, _ = alive_link(options=SERIAL)
    link.data_to_send()
    link.send(CHARGE, T0)
    events = []
    for step in range(1, 5):
        events += link.handle_timeout(T0 + 3 * step)
    assert link.data_to_send().count(b"\x02PS|") == 1
    assert isinstance(events[-1], PostingUnanswered)
