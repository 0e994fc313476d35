"""Conformance, the serial posting protocols of fias.md §7: HOBIC call record lines (TEL PMS/HB framing
LF … CR LF, ACK/NAK or y/n) and STX/ETX/BCC postings with ENQ/ACK/NAK (PMS/HX, DEFINITY), sans-IO.

The PMS's answers run whole, byte by byte and with trailing bytes (``mode``).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from appliance.errors import ProtocolError
from appliance.events import Ignored, LinkDown, LinkReady, PostCharge, PostingAnswered, PostingUnanswered
from pms_drivers import hobic, stx_posting
from pms_drivers.layout import FieldSpec
from pms_drivers.stx_peer import StxPmsPeer

T0 = 1_000_000.0
CHARGE = PostCharge(sequence=1, room="7110", amount_minor=347, start=datetime(2025, 3, 1, 10, 54),
                    duration=95, dialled="805-688-1000", call_type="local")
MODES = ("whole", "bytewise", "trailing")


def feed(link, data: bytes, mode: str, now: float = T0):
    if mode == "bytewise":
        return [e for i in range(len(data)) for e in link.receive_data(data[i:i + 1], now)]
    if mode == "trailing":
        return link.receive_data(data + b"\r\n", now)  # line noise after the answer
    return link.receive_data(data, now)


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def test_hobic_record_is_the_documented_line():
    """fias.md §7: ``0001 HTL 03/01 7110 10:54 0002 $003.47 805-688-1000 L`` framed LF … CR LF."""
    link = hobic.make_link()
    assert link.connection_made(T0)[-1] == LinkReady(detail="HOBIC: ready")
    link.send(CHARGE, T0)
    assert link.data_to_send() == b"\n0001 HTL 03/01 7110 10:54 0002 $003.47 8056881000 L\r\n"


def test_hobic_ack_nak_and_the_attempt_limit(mode):
    link = hobic.make_link(hobic.HobicOptions(attempts=2))
    link.connection_made(T0)
    link.send(CHARGE, T0)
    record = link.data_to_send()
    assert feed(link, b"\x15", mode) == []
    assert link.data_to_send() == record  # refused copy: sent again
    [answer] = [e for e in feed(link, b"\x15", mode) if not isinstance(e, Ignored)]
    assert (answer.status, answer.sequence) == ("UR", 1) and "not booked" in answer.text
    link.send(CHARGE, T0)
    link.data_to_send()
    [ok] = [e for e in feed(link, b"\x06", mode) if not isinstance(e, Ignored)]
    assert ok == PostingAnswered(sequence=1, status="OK", raw=b"\x06")


def test_hobic_y_n_answers_and_a_printer_style_output():
    link = hobic.make_link(hobic.HobicOptions(acknowledgement="y-n"))
    link.connection_made(T0)
    link.send(CHARGE, T0)
    link.data_to_send()
    assert link.receive_data(b"y", T0) == [PostingAnswered(sequence=1, status="OK", raw=b"y")]
    printer = hobic.make_link(hobic.HobicOptions(acknowledgement="none", end="\r\x0c"))
    printer.connection_made(T0)
    printer.send(CHARGE, T0)
    assert printer.data_to_send().endswith(b"L\r\x0c") and printer.deadline() == T0
    [answer] = printer.handle_timeout(T0)
    assert answer.status == "OK" and "no acknowledgement" in answer.text


def test_lost_ack_is_unknown_late_ack_is_dropped_and_the_link_pauses(mode):
    """No ACK within ack_timeout: delivery unknown (never resent). A late ACK is dropped, not taken for
    the next record; with no sign of life the link reports down and tries again after resume_after."""
    link = hobic.make_link(hobic.HobicOptions(ack_timeout=5, resume_after=60))
    link.connection_made(T0)
    link.send(CHARGE, T0)
    link.data_to_send()
    assert link.handle_timeout(T0 + 5) == [
        PostingUnanswered(sequence=1, reason="no ACK within 5 s: delivery unknown")]
    assert not link.ready_for_posting()
    late = feed(link, b"\x06", mode, T0 + 6)
    assert isinstance(late[0], Ignored) and "late" in late[0].reason
    assert link.handle_timeout(T0 + 11) == [] and link.ready_for_posting()  # it heard the PMS: go on
    link.send(CHARGE, T0 + 12)
    link.handle_timeout(T0 + 17)
    assert link.handle_timeout(T0 + 22) == [LinkDown(reason="the PMS did not acknowledge the last record")]
    assert link.handle_timeout(T0 + 82)[0] == LinkReady(detail="HOBIC: trying again after 60 s")


def test_stx_exchange_bcc_and_eot(mode):
    """PMS/HX: ENQ -> ACK, STX record ETX BCC -> ACK, EOT. The BCC is the XOR after STX up to ETX."""
    link = stx_posting.make_link()
    link.connection_made(T0)
    link.send(CHARGE, T0)
    assert link.data_to_send() == b"\x05"
    assert feed(link, b"\x06", mode) == [] or mode == "trailing"
    frame = link.data_to_send()
    body = frame[1:-1]
    assert frame[:1] == b"\x02" and body.endswith(b"\x03")
    assert frame[-1:] == stx_posting.bcc(body, "xor")
    [ok] = [e for e in feed(link, b"\x06", mode) if not isinstance(e, Ignored)]
    assert ok.status == "OK" and link.data_to_send() == b"\x04"


def test_stx_busy_and_silent_pms_never_sends_the_record():
    """NAK or silence to every ENQ: the record never left, so the posting is answered BY (retried later
    with backoff) and the link waits before trying again."""
    link = stx_posting.make_link(stx_posting.StxPostingOptions(enq_attempts=2))
    link.connection_made(T0)
    link.send(CHARGE, T0)
    assert link.receive_data(b"\x15", T0) == []
    events = link.receive_data(b"\x15", T0)
    assert events[0].status == "BY" and isinstance(events[1], LinkDown)
    assert link.data_to_send() == b"\x05\x05"
    link.handle_timeout(T0 + 120)
    link.send(CHARGE, T0 + 121)
    link.handle_timeout(T0 + 124)
    events = link.handle_timeout(T0 + 127)
    assert events[0].status == "BY" and "not sent" in events[0].text
    assert b"\x02" not in link.data_to_send()


@pytest.mark.parametrize("mode_", ["xor", "xor-stx", "sum", "none"])
def test_stx_bcc_modes_round_trip_through_the_peer(mode_):
    options = stx_posting.StxPostingOptions(bcc=mode_, enq=False, release=False)
    link, peer = stx_posting.make_link(options), StxPmsPeer(options)
    link.connection_made(T0)
    peer.connection_made(T0)
    link.send(CHARGE, T0)
    peer.receive_data(link.data_to_send(), T0)
    assert link.receive_data(peer.data_to_send(), T0)[0].status == "OK"
    assert peer.postings[0].room == "7110" and peer.postings[0].amount == "00000347"


def test_layouts_are_checked_and_values_cannot_break_the_frame():
    with pytest.raises(ValueError, match="width"):
        stx_posting.StxPostingOptions(fields=(FieldSpec(name="room"),))
    options = hobic.HobicOptions(fields=(FieldSpec(name="text"), FieldSpec(name="room")))
    line = hobic.encode_record(options, PostCharge(sequence=1, room="1", amount_minor=1,
                                                   start=datetime(2025, 1, 1), text="a\r\nb c"))
    assert line == b"\nab c 1\r\n" or line == b"\nabc 1\r\n"
    link = hobic.make_link()
    link.connection_made(T0)
    link.send(CHARGE, T0)
    with pytest.raises(ProtocolError):
        link.send(CHARGE, T0)
