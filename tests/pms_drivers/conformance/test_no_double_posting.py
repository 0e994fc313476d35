"""No double posting (issue 5 acceptance; fias.md §8 item 1): in each of PA lost, PA late, duplicate PA,
connection dropped after the PS, NAK then ACK, ENQ after a lost ACK and the daemon killed between send and
answer, every charge reaches the PMS at most once as a booked record. Each test runs the daemon's PMS
service with its outbox on a real database against the simulated PMS, and counts what the PMS received.
The same holds for the HOBIC and STX serial posting protocols.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC

import pytest

from pms_drivers.fias.link import FiasOptions
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import parse_fault, seeded_roster
from pms_drivers.hobic_peer import HobicPmsPeer
from pms_drivers.stx_peer import StxPmsPeer
from tests.pms_drivers.conformance.service_harness import Hotel

ROOMS = ["101", "102", "103"]
SERIAL_LINE = FiasOptions(lrc=True, ack_nak=True)


def _fias(tmp_path, fault: str, options: FiasOptions | None = None) -> Hotel:
    options = options or FiasOptions()
    peer = FiasPmsPeer(tz=UTC, roster=seeded_roster(ROOMS), lrc=bool(options.lrc), ack_nak=bool(options.ack_nak))
    hotel = Hotel(tmp_path / "a.db", options=options, peer=peer).start()
    hotel.advance(4)
    peer.faults.queue(parse_fault(fault))
    return hotel


def _booked(hotel: Hotel) -> Counter:
    """What the PMS took, by the posting's room and P#; a resent charge would show under a second P#."""
    return Counter((p.room, p.sequence) for p in hotel.peer.postings)


def _finish(hotel: Hotel) -> list[str]:
    hotel.advance(3600, step=10)
    hotel.check()
    assert len(hotel.peer.postings) == len(hotel.postings())  # one record per charge reached the PMS
    assert max(_booked(hotel).values()) == 1
    return hotel.states()


def test_pa_lost(tmp_path):
    hotel = _fias(tmp_path, "lose-pa")
    hotel.queue("101", "102")
    assert _finish(hotel) == ["failed", "ok"]
    assert hotel.postings()[0].reason.startswith("no answer: check the folio before re-posting")


def test_pa_late(tmp_path):
    hotel = _fias(tmp_path, "late-pa=45")
    hotel.queue("101", "102")
    assert _finish(hotel) == ["failed", "ok"]  # the late PA for P# 1 was never matched to P# 2


def test_duplicate_pa(tmp_path):
    hotel = _fias(tmp_path, "duplicate-pa")
    hotel.queue("101", "102")
    assert _finish(hotel) == ["ok", "ok"]


def test_connection_dropped_after_the_ps(tmp_path):
    hotel = _fias(tmp_path, "drop-after-ps")
    hotel.queue("101", "102")
    assert _finish(hotel) == ["failed", "ok"]


def test_nak_then_ack(tmp_path):
    """Serial line (LRC + ACK/NAK): the PMS NAKs the first copy, ACKs the repeat, books it once."""
    hotel = _fias(tmp_path, "nak", SERIAL_LINE)
    hotel.queue("101", "102")
    assert _finish(hotel) == ["ok", "ok"]


def test_enq_after_a_lost_ack(tmp_path):
    """Serial line: the PMS's ACK is lost; we ENQ, it repeats ACK; the PS is not written again."""
    hotel = _fias(tmp_path, "lose-ack", SERIAL_LINE)
    hotel.queue("101", "102")
    assert _finish(hotel) == ["ok", "ok"]
    assert hotel.peer.answers["OK"] == 2


def test_daemon_killed_between_send_and_answer(tmp_path):
    """The PS left, the daemon died before the PA: at the next start the posting is failed (check the
    folio), never sent again."""
    hotel = _fias(tmp_path, "late-pa=20")
    hotel.queue("101")
    assert len(hotel.peer.postings) == 1 and hotel.states() == ["open"]
    hotel.stop()  # killed: nothing after this is read
    hotel.peer.connection_lost(hotel.now)
    again = Hotel(tmp_path / "a.db", peer=hotel.peer, fresh_db=False).start()
    again.advance(10)
    again.queue("102")
    assert _finish(again) == ["failed", "ok"]
    assert again.postings()[0].reason.startswith("no answer: check the folio")


@pytest.mark.parametrize("protocol", ["hobic", "stx_posting"])
@pytest.mark.parametrize("fault", ["nak", "lose-pa", "late-pa=8", "duplicate-pa"])
def test_serial_posting_protocols(tmp_path, protocol, fault):
    """HOBIC and STX: NAK -> the copy was refused, resent; a lost or late ACK -> delivery unknown, never
    resent, and the late ACK is never taken for the next record; a doubled ACK answers one record."""
    peer = HobicPmsPeer() if protocol == "hobic" else StxPmsPeer()
    hotel = Hotel(tmp_path / "a.db", driver=protocol, peer=peer).start()
    peer.faults.queue(parse_fault(fault))
    hotel.queue("101", "102")
    states = _finish(hotel)
    expected = {"nak": ["ok", "ok"], "lose-pa": ["failed", "ok"], "late-pa=8": ["failed", "ok"],
                "duplicate-pa": ["ok", "ok"]}[fault]
    assert states == expected
