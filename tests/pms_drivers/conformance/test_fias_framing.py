"""Conformance, FIAS §1 framing and record layout (Spec p.20-23, p.91-98; fias.md §1).

Every dialogue runs whole, byte by byte, and with trailing bytes of a frame still to come (``mode``).
"""

from __future__ import annotations

import pytest

from appliance.events import GuestChanged, GuestCheckedIn, Ignored
from appliance.framing import frame
from pms_drivers.fias.link import FiasOptions
from tests.pms_drivers.fias_helpers import MODES, T0, alive_link


@pytest.fixture(params=MODES)
def mode(request):
    return request.param


def test_fields_in_any_order_repeated_and_digit_ids(mode):
    """§1 p.23: any field order; ids of any two printable characters (G#, A0, $2); the same id twice
    (GC's two GS, p.47); an empty field (SF|) is present."""
    link, wire = alive_link(mode)
    events = wire.pms("GI|A0x|$2y|SF|GNMüller|G#7|RN0412|GSY|", "GC|G#35869|RN312|GSN|RO332|GSY|", now=T0)
    assert isinstance(events[0], GuestCheckedIn) and events[0].room == "0412" and events[0].resync
    assert events[0].name == "Müller" and events[0].share
    assert isinstance(events[1], GuestChanged)
    assert (events[1].room, events[1].old_room, events[1].share, events[1].old_room_share) == ("312", "332", False, True)


def test_tcp_tolerates_stray_handshake_bytes_between_frames(mode):
    """§1 "Caveat": on TCP without ACK/NAK, a stray ACK, NAK or ENQ between frames is ignored."""
    link, wire = alive_link(mode)
    data = b"\x06" + frame(b"GO|RN0412|") + b"\x15\x05" + frame(b"GO|RN0413|")
    events = wire.raw(data, T0)
    assert [e.room for e in events] == ["0412", "0413"]
    assert link.data_to_send() == b""  # nothing is acknowledged on a plain TCP link


def test_lrc_on_tcp_checks_and_drops_a_bad_frame(mode):
    """§1 p.93: with the LRC switch on over TCP, the byte after ETX is the LRC; a wrong one drops the
    frame (there is no NAK without the ACK/NAK switch) and the stream carries on."""
    link, wire = alive_link(mode, FiasOptions(lrc=True, ack_nak=False))
    good = frame(b"GO|RN0413|", with_lrc=True)
    bad = good[:-1] + bytes([good[-1] ^ 1])
    events = wire.raw(bad + good, T0)
    assert isinstance(events[0], Ignored) and events[0].reason.startswith("bad LRC")
    assert events[1].room == "0413"


def test_lrc_byte_may_be_stx_or_etx():
    """§1 p.93: the LRC can take any value, even 0x02 or 0x03: it is found by position."""
    from appliance.framing import lrc

    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    rooms = [f"{a}{b}" for a in alphabet for b in alphabet]
    room = next(r for r in rooms if lrc(b"GO|RN" + r.encode() + b"|\x03") == 0x02)
    link, wire = alive_link(options=FiasOptions(lrc=True, ack_nak=False))
    framed = frame(b"GO|RN" + room.encode() + b"|", with_lrc=True)
    assert framed[-1] == 0x02
    assert wire.raw(framed + frame(b"GO|RN1|", with_lrc=True), T0)[0].room == room


def test_encoding_is_a_site_setting():
    """§1: the code page is configurable; cp850 and utf-8 give the same names."""
    for encoding in ("cp850", "utf-8", "cp1252"):
        link, wire = alive_link(options=FiasOptions(encoding=encoding))
        wire.encoding = encoding
        assert wire.pms("GI|RN1|G#1|GNGarcía Håkansson|", now=T0)[0].name == "García Håkansson"
