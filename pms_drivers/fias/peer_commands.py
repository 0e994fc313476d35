"""Roster and night-audit commands of the simulated PMS (a mixin of ``FiasPmsPeer``).

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md`` §4: GI check-in (p.39-42) with the share flag GS, GO check-out (p.43),
GC room move with RN/GS and RO/GS (p.44-47), DS ... DE resync (p.36-38), and NS/NE night audit. Each
command changes the roster and sends the records while the link is alive; it returns what it sent.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pms_drivers.fias.peer_model import Guest, Roster, guest_in_record, guest_out_record, move_record
from pms_drivers.fias.records import FiasRecord


class PeerCommands:
    # Provided by FiasPmsPeer.
    roster: Roster
    night_audit: bool
    alive: bool
    _push: Callable[[list[FiasRecord], float], list[FiasRecord]]
    _stamp: Callable[[float], datetime]
    _stamped: Callable[[str, float], FiasRecord]
    _resync_records: Callable[[float], list[FiasRecord]]

    def check_in(
        self,
        room: str,
        guest_id: str,
        name: str,
        *,
        now: float,
        first_name: str = "",
        share: bool | None = None,
    ) -> list[FiasRecord]:
        """Check a guest in; ``share`` defaults to "someone is already in the room". Returns what was sent."""
        if share is None:
            share = any(g.guest_id != guest_id for g in self.roster.guests(room))
        arrival = self._stamp(now).date()
        guest = Guest(guest_id=guest_id, name=name, first_name=first_name, share=share, arrival=arrival)
        self.roster.check_in(room, guest)
        return self._push([guest_in_record(room, guest, self._stamp(now))], now)

    def check_out(self, room: str, guest_id: str = "", *, now: float) -> list[FiasRecord]:
        """Check out one guest, or everybody in the room; raises KeyError when nobody matches."""
        leaving = self.roster.check_out(room, guest_id)
        if not leaving:
            raise KeyError(f"room {room} has no guest {guest_id}" if guest_id else f"room {room} is vacant")
        stays = self.roster.occupied(room)
        when = self._stamp(now)
        return self._push(
            [guest_out_record(room, g, room_still_occupied=stays, when=when) for g in leaving], now
        )

    def move(self, old: str, new: str, guest_id: str, *, now: float) -> list[FiasRecord]:
        """A room move: GC with RN = new room and RO = old room, each followed by its GS (p.47)."""
        guest = self.roster.move(old, new, guest_id)
        new_shared, old_occupied = len(self.roster.guests(new)) > 1, self.roster.occupied(old)
        return self._push([move_record(guest, new, new_shared, old, old_occupied, self._stamp(now))], now)

    def start_night_audit(self, now: float) -> list[FiasRecord]:
        self.night_audit = True
        return self._push([self._stamped("NS", now)], now)

    def end_night_audit(self, now: float) -> list[FiasRecord]:
        self.night_audit = False
        return self._push([self._stamped("NE", now)], now)

    def resync(self, now: float) -> list[FiasRecord]:
        """Restate the roster in a DS ... DE envelope without a DR (a PMS-initiated resync, §4 p.36)."""
        if not self.alive:
            return []
        return self._resync_records(now)

    def restate(self, now: float) -> list[FiasRecord]:
        """Stream a GI for every guest with no DS/DE envelope, as Protel does on link-up (fias.md §4)."""
        when = self._stamp(now)
        records = [guest_in_record(room, g, when, swap=True) for room, guests in self.roster.rooms()
                   for g in guests]
        return self._push(records, now)
