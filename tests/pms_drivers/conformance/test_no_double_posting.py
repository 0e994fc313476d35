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
from sqlalchemy import select

from appliance import actions
from appliance.db.models import PostingEvent
from appliance.outbox import PIPELINE_DEPTH
from pms_drivers.fias.link import FiasOptions
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import parse_fault, seeded_roster
from pms_drivers.hobic_peer import HobicPmsPeer
from pms_drivers.stx_peer import StxPmsPeer
from tests.pms_drivers.conformance.service_harness import Hotel, received_sequences

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
    """The PA for P# 1 comes 45 s after its PS, 15 s after the answer timeout, while P# 2 is in flight: it
    is never matched to P# 2, and it still counts for P# 1 (the PMS booked it)."""
    hotel = _fias(tmp_path, "late-pa=45")
    hotel.queue("101", "102")
    assert _finish(hotel) == ["ok", "ok"]
    first, second = hotel.postings()
    assert first.reason == "late answer from the PMS: OK (after 45 s)" and first.sequence == 1
    assert second.reason == "OK: posted" and second.sequence == 2
    assert _causes(hotel, first.id)[-2:] == [
        "no answer: check the folio before re-posting (no answer within 30 s)",
        "late answer from the PMS: OK (after 45 s)"]


def test_pa_late_refusal(tmp_path):
    """A late NG: still failed, now with the PMS's reason instead of "no answer"."""
    hotel = _fias(tmp_path, "late-pa=45")
    hotel.queue("999", "102")
    assert _finish(hotel) == ["failed", "ok"]
    assert hotel.postings()[0].reason == ("late answer from the PMS: PMS refused it, NG: guest not found "
                                          "(INVALID ROOM) (after 45 s)")


@pytest.mark.parametrize(("action", "state", "received"), [
    ("repost", "ok", 2),  # re-posted with a new P# before the late OK: the admin's copy is booked too
    ("mark_posted", "ok", 1),
    ("write_off", "excluded", 1),
])
def test_pa_late_after_the_admin_dealt_with_it(tmp_path, action, state, received):
    """The late OK comes after IT re-posted, marked posted or wrote off the failed posting: the admin's
    decision stands (a re-posted copy keeps its own P# and answer); the history tells of the late OK."""
    hotel = _fias(tmp_path, "late-pa=120")
    hotel.queue("101")
    hotel.advance(35)
    [posting] = hotel.postings()
    assert posting.state == "failed"
    with hotel.sessions.begin() as session:
        getattr(actions, action)(session, posting.id, note="checked", actor="it", now=hotel.utc())
    hotel.service.wake()
    hotel.advance(120, step=5)
    hotel.check()
    [posting] = hotel.postings()
    assert posting.state == state
    assert len(hotel.peer.postings) == received
    assert [seq for seq in received_sequences(hotel.peer)] == list(range(1, received + 1))
    late = [c for c in _causes(hotel, posting.id) if c.startswith("answer from the PMS for P# 1 ")]
    assert len(late) == 1 and "not applied" in late[0]


def _causes(hotel: Hotel, posting_id: int) -> list[str]:
    with hotel.sessions() as session:
        return [e.cause for e in session.scalars(
            select(PostingEvent).where(PostingEvent.posting_id == posting_id).order_by(PostingEvent.id))]


def test_duplicate_pa(tmp_path):
    hotel = _fias(tmp_path, "duplicate-pa")
    hotel.queue("101", "102")
    assert _finish(hotel) == ["ok", "ok"]
    first = hotel.postings()[0]
    assert _causes(hotel, first.id)[-1].endswith("not applied, it is already posted")  # the copy, noted


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


def _draining_with_p3_unanswered(tmp_path) -> Hotel:
    """Ten postings drain; the PMS loses the PA of P# 3, so P# 3 is on the wire and the rest of the
    claimed window (P# 4-10) waits in memory, unsent."""
    peer = FiasPmsPeer(tz=UTC, roster=seeded_roster(ROOMS))
    hotel = Hotel(tmp_path / "a.db", peer=peer).start()
    hotel.advance(4)
    peer.faults.every(3, parse_fault("lose-pa"))
    hotel.queue(*["101"] * 10)
    assert received_sequences(peer) == [1, 2, 3] and hotel.service.in_flight == 3
    peer.faults.clear()
    return hotel


def _restart(hotel: Hotel, tmp_path) -> Hotel:
    hotel.peer.connection_lost(hotel.now)
    again = Hotel(tmp_path / "a.db", peer=hotel.peer, fresh_db=False).start()
    again.advance(60, step=5)
    again.check()
    return again


def test_daemon_killed_while_a_claimed_window_drains(tmp_path):
    """Killed (no stop) with P# 3 in flight and P# 4-10 claimed: recovery cannot tell which of the first
    PIPELINE_DEPTH claims without an outcome left, so those are failed (check the folio), never resent;
    the later ones cannot have left (fias.md §8.1 bound) and go out after the restart with new P#s."""
    hotel = _draining_with_p3_unanswered(tmp_path)
    hotel.db.jobs.clear()  # killed: queued database work never runs
    hotel.protocol = hotel.transport = None
    hotel.engine.dispose()
    again = _restart(hotel, tmp_path)
    states = again.states()
    assert states == ["ok", "ok"] + ["failed"] * PIPELINE_DEPTH + ["ok"] * (8 - PIPELINE_DEPTH)
    assert received_sequences(again.peer) == [1, 2, 3, *range(11, 11 + 8 - PIPELINE_DEPTH)]
    assert max(_booked(again).values()) == 1


def test_daemon_stopped_while_a_claimed_window_drains(tmp_path):
    """A clean stop gives the unsent window back: only P# 3, which was on the wire, needs a look."""
    hotel = _draining_with_p3_unanswered(tmp_path)
    hotel.stop()
    hotel.db.drain()  # the database thread runs what was queued before it stops
    again = _restart(hotel, tmp_path)
    assert again.states() == ["ok", "ok", "failed"] + ["ok"] * 7
    assert received_sequences(again.peer) == [1, 2, 3, *range(11, 18)]
    assert max(_booked(again).values()) == 1
