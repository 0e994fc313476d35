"""The FIAS PMS simulator's control language: one command per line, one answer line each.

Sans-IO and clock-free like the peer it drives (``pms_drivers.fias.peer.FiasPmsPeer``, the PMS side of
Oracle FIAS 2.20.23, see fias.md §6 "Consequence"). The Twisted simulator
(``appliance.net.pms_simulator``) serves it on its control port and sends what a command queued.

Commands (answers start with ``OK`` or ``ERR``)::

    checkin ROOM GUESTID NAME [share]     GI to the vendor (NAME in quotes if it has spaces)
    checkout ROOM [GUESTID]               GO for one guest or the whole room
    move OLD NEW GUESTID                  GC with RN/GS and RO/GS (a room move)
    fault CODE | fault answer CODE        the next PS is answered with this AS code (RY, NA, UR, NP ...)
    fault lose-pa                         the next PS gets no PA
    fault late-pa SECONDS                 the next PA goes out SECONDS late
    fault duplicate-pa                    the next PA is sent twice
    fault drop-after-ps                   the connection drops right after the next PS
    fault nak | lose-ack                  serial: NAK the next PS once / lose its ACK (the vendor ENQs)
    fault bad-lrc                         serial: the next PA goes out with a wrong LRC first
    fault every N FAULT                   FAULT on every Nth posting (as --fault-every)
    fault clear                           forget all scripted faults
    night-audit start|end                 NS / NE; PS answered NA in between
    resync                                DS, GI+SF per guest, GO+SF per vacant room, DE (no DR needed)
    restate                               GI+SF per guest with no DS/DE envelope (as Protel on link-up)
    link-end                              LE, then close (IFC8 shutting down)
    restart                               LS: play an IFC8 restart, the vendor must re-describe itself
    roster                                rooms and guests
    stats                                 connection, postings, answers by code, pending faults
    help                                  the command list
"""

from __future__ import annotations

from collections.abc import Callable

from appliance.errors import ProtocolError
from pms_drivers.fias.peer import FiasPmsPeer
from pms_drivers.fias.peer_model import FRAME_FAULTS, parse_fault
from pms_drivers.peer_events import split_command

CONTROL_HELP = (
    "checkin ROOM GUESTID NAME [share] | checkout ROOM [GUESTID] | move OLD NEW GUESTID | "
    "fault CODE | fault answer CODE | fault lose-pa | fault late-pa SECONDS | fault duplicate-pa | "
    "fault drop-after-ps | fault nak | fault lose-ack | fault bad-lrc | fault every N FAULT | fault clear | "
    "night-audit start|end | resync | restate | link-end | restart | roster | stats | help"
)


class PmsControl:
    """Executes control commands against a ``FiasPmsPeer``; ``connected`` reports whether a vendor is on."""

    def __init__(self, peer: FiasPmsPeer, *, connected: Callable[[], bool] = lambda: False) -> None:
        self.peer = peer
        self._connected = connected

    def execute(self, line: str, now: float) -> str:
        """Run one control command; the answer is one line starting with OK or ERR."""
        parsed = split_command(line)
        if isinstance(parsed, str):
            return parsed
        name, args = parsed
        command = _COMMANDS.get(name)
        if command is None:
            return f"ERR unknown command {name!r}; try help"
        try:
            answer = command(self, args, now)
        except (ValueError, KeyError, IndexError, ProtocolError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return f"ERR {text}"
        return f"OK {answer}".rstrip()

    def _checkin(self, args: list[str], now: float) -> str:
        if len(args) not in (3, 4) or (len(args) == 4 and args[3].lower() not in ("share", "y", "n")):
            raise ValueError("usage: checkin ROOM GUESTID NAME [share]")
        share = None if len(args) == 3 else args[3].lower() in ("share", "y")
        sent = self.peer.check_in(args[0], args[1], args[2], now=now, share=share)
        return f"{args[1]} in {args[0]}" + ("" if sent else " (link not alive: not sent)")

    def _checkout(self, args: list[str], now: float) -> str:
        if len(args) not in (1, 2):
            raise ValueError("usage: checkout ROOM [GUESTID]")
        sent = self.peer.check_out(args[0], args[1] if len(args) == 2 else "", now=now)
        return f"{args[0]} checked out" + ("" if sent else " (link not alive: not sent)")

    def _move(self, args: list[str], now: float) -> str:
        if len(args) != 3:
            raise ValueError("usage: move OLD NEW GUESTID")
        sent = self.peer.move(args[0], args[1], args[2], now=now)
        return f"{args[2]} moved {args[0]} -> {args[1]}" + ("" if sent else " (link not alive: not sent)")

    def _fault(self, args: list[str], now: float) -> str:
        faults = self.peer.faults
        if args == ["clear"]:
            faults.clear()
            return "faults cleared"
        if len(args) >= 3 and args[0] == "every":
            every, fault = int(args[1]), parse_fault(_fault_text(args[2:]))
            faults.every(every, fault)
            return f"every {every}th posting: {fault}"
        if not args:
            raise ValueError("usage: fault CODE|lose-pa|late-pa SECONDS|duplicate-pa|drop-after-ps")
        fault = parse_fault(_fault_text(args))
        if fault.kind in FRAME_FAULTS and not self.peer.ack_nak:
            raise ValueError(f"fault {fault} needs the ACK/NAK line protocol (--ack-nak)")
        faults.queue(fault)
        return f"next posting: {fault}"

    def _night_audit(self, args: list[str], now: float) -> str:
        if args == ["start"]:
            self.peer.start_night_audit(now)
        elif args == ["end"]:
            self.peer.end_night_audit(now)
        else:
            raise ValueError("usage: night-audit start|end")
        return f"night audit {args[0]}"

    def _resync(self, args: list[str], now: float) -> str:
        sent = self.peer.resync(now)
        return f"resync sent: {len(sent)} record(s)" if sent else "link not alive: not sent"

    def _restate(self, args: list[str], now: float) -> str:
        sent = self.peer.restate(now)
        return f"{len(sent)} GI record(s) sent without DS/DE"

    def _link_end(self, args: list[str], now: float) -> str:
        self.peer.link_end(now)
        return "LE sent"

    def _restart(self, args: list[str], now: float) -> str:
        self.peer.restart(now)
        return "LS sent"

    def _roster(self, args: list[str], now: float) -> str:
        rooms = self.peer.roster.rooms()
        occupied = [
            f"{room}["
            + ", ".join(f"{g.guest_id} {g.name}" + (" (share)" if g.share else "") for g in guests)
            + "]"
            for room, guests in rooms
            if guests
        ]
        return f"rooms={len(rooms)} occupied={len(occupied)} " + " ".join(occupied)

    def _stats(self, args: list[str], now: float) -> str:
        peer = self.peer
        answers = ",".join(f"{code}:{count}" for code, count in sorted(peer.answers.items())) or "-"
        pending = ";".join(peer.faults.pending()) or "-"
        return (
            f"connected={'yes' if self._connected() else 'no'} state={peer.state.name.lower()} "
            f"connections={peer.connections} postings={len(peer.postings)} answers={answers} "
            f"night_audit={'yes' if peer.night_audit else 'no'} faults={pending}"
        )

    def _help(self, args: list[str], now: float) -> str:
        return CONTROL_HELP


def _fault_text(args: list[str]) -> str:
    """``answer RY`` -> ``RY``; ``late-pa 45`` -> ``late-pa=45``."""
    if args[0] == "answer" and len(args) == 2:
        return args[1]
    if args[0] == "late-pa" and len(args) == 2:
        return f"late-pa={args[1]}"
    if len(args) != 1:
        raise ValueError(f"cannot read fault {' '.join(args)!r}")
    return args[0]


_COMMANDS: dict[str, Callable[[PmsControl, list[str], float], str]] = {
    "checkin": PmsControl._checkin,
    "checkout": PmsControl._checkout,
    "move": PmsControl._move,
    "fault": PmsControl._fault,
    "night-audit": PmsControl._night_audit,
    "resync": PmsControl._resync,
    "restate": PmsControl._restate,
    "link-end": PmsControl._link_end,
    "restart": PmsControl._restart,
    "roster": PmsControl._roster,
    "stats": PmsControl._stats,
    "help": PmsControl._help,
}


