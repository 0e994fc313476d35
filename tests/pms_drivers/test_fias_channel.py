"""FIAS low-level channel (fias.md §1: STX/ETX, LRC, ACK/NAK/ENQ; Spec p.22, p.91-97) and the link's
robustness against arbitrary bytes (ARCHITECTURE.md rules 6 and 7)."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.errors import ProtocolError
from appliance.events import Ignored, LinkDown, LinkReady, PostCharge, PostingAnswered, PostingUnanswered
from appliance.framing import ACK, ENQ, NAK, frame
from pms_drivers.fias.channel import DeliveryFailed, FrameChannel
from pms_drivers.fias.link import FiasLink, FiasOptions, State
from tests.pms_drivers.fias_helpers import T0, UTC, alive_link

SERIAL = FiasOptions(lrc=True, ack_nak=True)


def test_lrc_spec_example():
    """§1: LRC = XOR of the bytes after STX up to and including ETX; for LS|DA250314|TI101500| it is '|'."""
    link = FiasLink(FiasOptions(lrc=True, listen_before_open=0), tz=UTC)
    link.connection_made(T0)
    link.handle_timeout(T0)
    assert link.data_to_send() == b"\x02LS|DA250314|TI101500|\x03|"
    assert frame(b"12345", with_lrc=True)[-1:] == b"2"  # the Spec's own example (p.93)


def test_lrc_mismatch_without_ack_nak_is_ignored():
    """§1 (Spec p.93): a frame whose LRC is wrong is not a record; without ACK/NAK it is only Ignored."""
    link = FiasLink(FiasOptions(lrc=True), tz=UTC)
    link.connection_made(T0)
    [event] = link.receive_data(b"\x02LS|\x03X", T0)
    assert isinstance(event, Ignored) and event.reason.startswith("bad LRC")
    assert link.data_to_send() == b""


def test_ack_nak_receiver_side():
    """§1 full duplex (Spec p.93-95): ACK every good frame, NAK a bad LRC; ENQ repeats the last answer;
    any character other than ENQ resets the stored answer to NAK; an ENQ at start-up gets NAK."""
    channel = FrameChannel(lrc=True, ack_nak=True)
    assert channel.receive(b"\x05", T0) == [] and channel.data_to_send() == bytes([NAK])
    assert channel.receive(frame(b"GI|RN1|", with_lrc=True), T0) == [b"GI|RN1|"]
    assert channel.data_to_send() == bytes([ACK])
    channel.receive(b"\x05\x05", T0)
    assert channel.data_to_send() == bytes([ACK, ACK])  # the last answer, the record is not passed on again
    [bad] = channel.receive(b"\x02GI|RN2|\x03X", T0)
    assert isinstance(bad, Ignored) and channel.data_to_send() == bytes([NAK])
    channel.receive(frame(b"GI|RN3|", with_lrc=True), T0)
    channel.data_to_send()
    channel.receive(b"\x02GI|RN", T0)  # a new frame started: the stored answer is NAK again
    channel.receive(b"\x05", T0)
    assert channel.data_to_send() == bytes([NAK])


def test_ack_nak_sender_side():
    """§1 (Spec p.94-96): one frame outstanding; NAK -> resend; no answer in 3 s -> ENQ (not a resend);
    after 4 attempts the frame is reported undelivered."""
    channel = FrameChannel(lrc=True, ack_nak=True, ack_timeout=3.0)
    channel.send(b"LD|", T0)
    channel.send(b"LA|", T0)
    assert channel.data_to_send() == frame(b"LD|", with_lrc=True)
    assert channel.deadline() == T0 + 3
    channel.receive(bytes([NAK]), T0 + 1)
    assert channel.data_to_send() == frame(b"LD|", with_lrc=True)
    channel.receive(bytes([ACK]), T0 + 2)
    assert channel.data_to_send() == frame(b"LA|", with_lrc=True)
    assert channel.handle_timeout(T0 + 4.9) == []
    assert channel.handle_timeout(T0 + 5) == [] and channel.data_to_send() == bytes([ENQ])
    assert channel.handle_timeout(T0 + 8) == [] and channel.data_to_send() == bytes([ENQ])
    assert channel.handle_timeout(T0 + 11) == [] and channel.data_to_send() == bytes([ENQ])
    assert channel.handle_timeout(T0 + 14) == [
        DeliveryFailed(payload=b"LA|", reason="no ACK after 4 attempts")
    ]
    assert channel.idle and channel.deadline() is None


def test_ack_nak_handshake_and_posting():
    """§1 + §2: with ACK/NAK on, the LD/LR/LA sequence goes out one frame per ACK, and we ACK the PMS."""
    link = FiasLink(SERIAL, tz=UTC)
    link.connection_made(T0)
    link.receive_data(frame(b"LS|DA250314|TI101500|", with_lrc=True), T0)
    out = link.data_to_send()
    assert out == bytes([ACK]) + frame(b"LD|DA250314|TI101500|V#0.1.0|IFPB|", with_lrc=True)
    frames = []
    for _ in range(8):
        link.receive_data(bytes([ACK]), T0 + 1)
        frames.append(link.data_to_send())
    assert frames[-1] == frame(b"LA|DA250314|TI101500|", with_lrc=True)
    assert link.receive_data(bytes([ACK]) + frame(b"LA|", with_lrc=True), T0 + 2) == [
        LinkReady(detail="link alive")
    ]
    assert link.data_to_send() == bytes([ACK])
    link.send(
        PostCharge(sequence=1, room="1", amount_minor=5, start=__import__("datetime").datetime(2025, 1, 1)),
        T0 + 3,
    )
    assert link.data_to_send().startswith(b"\x02PS|")


def test_ack_nak_delivery_failure_breaks_the_link():
    """§8 item 1: a charge that was never acknowledged is not silently dropped: the link fails, the
    posting is reported unanswered, and the adapter reconnects."""
    link, _ = alive_link(options=SERIAL)
    link.data_to_send()
    link.send(
        PostCharge(sequence=2, room="1", amount_minor=5, start=__import__("datetime").datetime(2025, 1, 1)),
        T0,
    )
    events = []
    for _ in range(4):
        events += link.receive_data(bytes([NAK]), T0 + 1)
    # The PMS refused every copy with NAK, so it booked none: a failure with the reason, never resent.
    assert events == [
        PostingAnswered(
            sequence=2,
            status="UR",
            text="the PMS answered NAK to every copy (NAK on all 4 attempts); not booked [appliance]",
        ),
        LinkDown(reason="record not acknowledged: NAK on all 4 attempts"),
    ]
    assert link.wants_close and link.state is State.FAILED


def test_ack_nak_silence_after_the_ps_is_delivery_unknown():
    """§1 p.95 + §8 item 1: no ACK and no answer to three ENQs: the PMS may have booked the PS, so it is
    reported unanswered (never resent), and the link breaks."""
    link, _ = alive_link(options=SERIAL)
    link.data_to_send()
    link.send(
        PostCharge(sequence=3, room="1", amount_minor=5, start=__import__("datetime").datetime(2025, 1, 1)),
        T0,
    )
    events = []
    for step in range(1, 5):
        events += link.handle_timeout(T0 + 3 * step)
    assert link.data_to_send().count(b"\x05") == 3  # three ENQs, the PS was written once
    assert events == [
        LinkDown(reason="record not acknowledged: no ACK after 4 attempts"),
        PostingUnanswered(
            sequence=3,
            reason="link failed while awaiting the answer: record not acknowledged: no ACK after 4 attempts",
        ),
    ]


def test_ls_spam_does_not_grow_the_ack_queue():
    """Every buffer is bounded: a PMS that repeats LS without ACKing leaves one LD/LR/LA set queued."""
    link = FiasLink(SERIAL, tz=UTC)
    link.connection_made(T0)
    total = 0
    for _ in range(500):
        link.receive_data(frame(b"LS|", with_lrc=True), T0)
        total += len(link.data_to_send())
    assert total < 600  # 500 ACKs and the single LD frame


_FRAMES = [
    frame(text)
    for text in (
        b"LS|",
        b"LA|",
        b"LE|",
        b"DS|",
        b"DE|",
        b"NS|",
        b"NE|",
        b"PA|ASOK|P#1|",
        b"PA|P#99999999999999999999|",
        b"GI|RN1|G#2|GSY|SF|",
        b"GO|RN1|",
        b"GC|RN1|RO2|GSY|GSN|",
        b"GC|GS|RN1|",
        b"ZZ|",
        b"P",
        b"PA|P#\xff|",
    )
]
_chunks = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(_FRAMES),
        st.sampled_from([b"\x02", b"\x03", b"\x05", b"\x06", b"\x15"]),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    chunks=_chunks,
    options=st.sampled_from([FiasOptions(), SERIAL, FiasOptions(encoding="utf-8")]),
    start_alive=st.booleans(),
    post=st.booleans(),
)
def test_receive_data_only_ever_raises_protocol_error(chunks, options, start_alive, post):
    """Peer bytes never raise anything but ProtocolError (mostly they become Ignored), and what the link
    answers stays small: nothing accumulates."""
    if start_alive:
        link, _ = alive_link(options=options)
        link.data_to_send()
        if post:
            link.send(
                PostCharge(
                    sequence=1, room="1", amount_minor=5, start=__import__("datetime").datetime(2025, 1, 1)
                ),
                T0,
            )
    else:
        link = FiasLink(options, tz=UTC)
        link.connection_made(T0)
    now = T0
    for chunk in chunks:
        now += 7
        try:
            link.receive_data(chunk, now)
            link.handle_timeout(now)
        except ProtocolError:
            return
        assert len(link.data_to_send()) < 4096
        deadline = link.deadline()
        assert deadline is None or deadline >= now or link.state is not State.CLOSED


def test_memory_stays_bounded_under_endless_input():
    """ARCHITECTURE.md rule 6: a megabyte of garbage, and a frame that never ends, cost no memory."""
    link, _ = alive_link()
    garbage = bytes(range(32, 127)) * 43  # 4085 bytes, no STX
    endless = b"\x02GI|RN" + b"x" * 4090
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        for index in range(256):
            events = link.receive_data(garbage if index % 2 else endless[:4096], T0)
            assert all(isinstance(e, Ignored) for e in events)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - base < 64 * 1024
    assert link.state is State.ALIVE
