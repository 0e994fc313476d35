"""Conformance, FIAS §4 guest records (Spec p.39-47; fias.md §4, §8 items 3 and 5) into the occupancy
history: GI/GO/GC with sharers (GS), room moves (RN new, RO old, a GS for each), GO+GI pairs in either
order, repeated records idempotent, and which guest held which room when.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from appliance.db.session import make_engine, make_sessionmaker, upgrade
from appliance.events import GuestChanged, GuestCheckedIn, GuestCheckedOut
from appliance.occupancy import apply_guest_event, stay_at
from pms_drivers.fias.peer import FiasPmsPeer
from tests.pms_drivers.conformance.service_harness import Hotel

T = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def _db(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


def _apply(sessions, *events, at=T):
    with sessions.begin() as session:
        for offset, event in enumerate(events):
            apply_guest_event(session, event, at + timedelta(minutes=offset))


def _open(sessions, room):
    with sessions() as session:
        from appliance.occupancy import open_stays
        return sorted(s.guest_id for s in open_stays(session, room))


def test_sharers_move_and_checkout_through_the_link(tmp_path):
    """p.39-47 end to end: GI for two sharers, a GC move (RN312 GSN, RO0412 GSY), a GO; the stays say who
    held which room when."""
    peer = FiasPmsPeer(tz=UTC)
    hotel = Hotel(tmp_path / "a.db", peer=peer).start()
    hotel.advance(4)
    peer.check_in("0412", "1", "Smith", now=hotel.now)
    hotel.advance(60)
    peer.check_in("0412", "2", "Jones", now=hotel.now)  # a sharer: GS Y
    hotel.advance(60)
    moved_at = hotel.now
    peer.move("0412", "0312", "1", now=hotel.now)
    hotel.advance(60)
    peer.check_out("0412", "2", now=hotel.now)
    hotel.settle()
    assert hotel.stays() == [("0412", "1", False), ("0412", "2", False), ("0312", "1", True)]
    with hotel.sessions() as session:
        before = datetime.fromtimestamp(moved_at - 30, UTC)
        after = datetime.fromtimestamp(moved_at + 30, UTC)
        assert stay_at(session, "0412", before).guest_id == "1"  # the main guest before the move
        assert stay_at(session, "0412", after).guest_id == "2"  # the sharer stayed on
        assert stay_at(session, "0312", after).guest_id == "1"
        assert stay_at(session, "0312", before) is None
    hotel.check()


def test_move_that_empties_the_old_room(tmp_path):
    """p.44: if RO is now empty (its GS says N), act as GO there: every stay in RO ends."""
    sessions = _db(tmp_path)
    _apply(sessions, GuestCheckedIn(room="332", guest_id="1"), GuestCheckedIn(room="332", guest_id="", share=True),
           GuestChanged(room="312", guest_id="1", old_room="332", old_room_share=False))
    assert _open(sessions, "332") == [] and _open(sessions, "312") == ["1"]


def test_go_gi_pair_in_either_order(tmp_path):
    """p.45-46: some PMSs send GO + GI instead of GC, in either order; the result is the same."""
    for order in ("go-first", "gi-first"):
        sessions = _db(tmp_path / order) if (tmp_path / order).mkdir() is None else None
        go = GuestCheckedOut(room="332", guest_id="1", share=True)
        gi = GuestCheckedIn(room="312", guest_id="1")
        _apply(sessions, GuestCheckedIn(room="332", guest_id="1"), GuestCheckedIn(room="332", guest_id="2", share=True))
        _apply(sessions, *((go, gi) if order == "go-first" else (gi, go)), at=T + timedelta(hours=1))
        assert _open(sessions, "332") == ["2"], order
        assert _open(sessions, "312") == ["1"], order


def test_repeated_records_change_nothing(tmp_path):
    """§8 item 3: IFC8 repeats records after a hiccup and restates them after every LS/LA."""
    sessions = _db(tmp_path)
    records = [GuestCheckedIn(room="101", guest_id="1"), GuestCheckedIn(room="101", guest_id="2", share=True),
               GuestChanged(room="102", guest_id="1", old_room="101", old_room_share=True),
               GuestCheckedOut(room="101", guest_id="2")]
    _apply(sessions, *[r for r in records for _ in range(3)])  # each record three times in a row
    with sessions() as session:
        from sqlalchemy import func, select

        from appliance.db.models import Stay
        assert session.scalar(select(func.count()).select_from(Stay)) == 3
    assert _open(sessions, "101") == [] and _open(sessions, "102") == ["1"]


def test_second_sharer_does_not_check_the_first_out(tmp_path):
    """§4 (NethServer #8144): a second sharer's GI (GS Y) must not force the room through check-out."""
    sessions = _db(tmp_path)
    _apply(sessions, GuestCheckedIn(room="101", guest_id="1"), GuestCheckedIn(room="101", guest_id="2", share=True))
    assert _open(sessions, "101") == ["1", "2"]
