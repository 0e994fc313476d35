"""Occupancy history from the PMS's guest records (FIAS 2.20.23 §4, p.39-47; fias.md §4 and §8.3/8.5).

A ``Stay`` row says which guest held which room from when to when, so a call is charged to the stay that
held the room when the call was made. Every handler is idempotent: IFC8 repeats GI records after a
hiccup and restates its roster after each link start, and the same record twice changes nothing.
Guests are keyed by reservation number (G#) so sharers and moves are tracked per guest; a move sent as a
GO + GI pair works in either order (p.45-46), as GI to the new room and GO from the old one each touch
only that guest's stay.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone, tzinfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from appliance.db.models import Stay
from appliance.events import GuestChanged, GuestCheckedIn, GuestCheckedOut


def stay_at(session: Session, room: str, at: datetime) -> Stay | None:
    """The stay that held ``room`` at ``at``; with sharers, the earliest check-in (the main guest)."""
    query = (
        select(Stay)
        .where(Stay.room == room, Stay.checked_in_at <= at)
        .where((Stay.checked_out_at.is_(None)) | (Stay.checked_out_at > at))
        .order_by(Stay.checked_in_at, Stay.id)
        .limit(1)
    )
    return session.scalars(query).first()


def open_stays(session: Session, room: str) -> list[Stay]:
    query = select(Stay).where(Stay.room == room, Stay.checked_out_at.is_(None)).order_by(Stay.id)
    return list(session.scalars(query))


def apply_guest_event(session: Session, event: object, now: datetime, tz: tzinfo = timezone.utc) -> str:
    """Apply one guest event; returns a short description for the log (never the guest's name)."""
    if isinstance(event, GuestCheckedIn):
        since = now
        if event.resync and event.arrival is not None:
            since = _resync_check_in_time(session, event.room, event.arrival, now, tz)
        return _check_in(session, event.room, event.guest_id, event.name, event.share, since,
                         "resync" if event.resync else "pms")
    if isinstance(event, GuestCheckedOut):
        return _check_out(session, event.room, event.guest_id, now)
    if isinstance(event, GuestChanged):
        if event.old_room and event.old_room != event.room:
            # p.44-47: check in to RN; remove only this G# from RO; if RO's GS says nobody is left
            # there, act as a GO for the whole room.
            _check_out(session, event.old_room, event.guest_id, now)
            if not event.old_room_share:
                _check_out(session, event.old_room, "", now)
            _check_in(session, event.room, event.guest_id, event.name, event.share, now, "move")
            return f"guest {event.guest_id or '?'} moved from room {event.old_room} to {event.room}"
        return _check_in(session, event.room, event.guest_id, event.name, event.share, now, "change")
    raise TypeError(f"not a guest event: {type(event).__name__}")


def _resync_check_in_time(session: Session, room: str, arrival: date, now: datetime, tz: tzinfo) -> datetime:
    """A guest first learned of in a resync has been in the room since some time on the arrival day; the
    start of that day (but not before the room's last check-out) is the best we know, so calls made
    before the resync are still charged to this stay."""
    start_of_day = datetime.combine(arrival, time.min, tzinfo=tz)
    last_out = session.scalar(select(func.max(Stay.checked_out_at)).where(Stay.room == room))
    candidates = [start_of_day] + ([last_out] if last_out is not None else [])
    return min(max(candidates), now)


def _check_in(session: Session, room: str, guest_id: str, name: str, share: bool, now: datetime,
              source: str) -> str:
    current = open_stays(session, room)
    for stay in current:
        if stay.guest_id == guest_id:
            stay.name = name or stay.name
            stay.share = share
            return f"room {room}: guest {guest_id or '?'} already checked in (updated)"
    if not share:
        # A non-sharing check-in means the PMS holds only this guest in the room now; close stays the
        # PMS forgot to check out so calls from here on go to the new guest.
        for stay in current:
            stay.checked_out_at = now
    session.add(Stay(room=room, guest_id=guest_id, name=name, share=share, checked_in_at=now, source=source))
    return f"room {room}: guest {guest_id or '?'} checked in" + (" (sharer)" if share else "")


def _check_out(session: Session, room: str, guest_id: str, now: datetime) -> str:
    closed = 0
    for stay in open_stays(session, room):
        if not guest_id or stay.guest_id == guest_id:
            stay.checked_out_at = now
            closed += 1
    return f"room {room}: {closed} stay(s) checked out"


def close_stays_not_seen(session: Session, seen: set[tuple[str, str]], now: datetime) -> int:
    """After a guest-based resync (DS..DE): a guest checked in before but not restated has left."""
    closed = 0
    for stay in session.scalars(select(Stay).where(Stay.checked_out_at.is_(None))):
        if (stay.room, stay.guest_id) not in seen:
            stay.checked_out_at = now
            closed += 1
    return closed
