"""FIAS records from the PMS turned into appliance events: GI, GO, GC, PA.

Source: Oracle Hospitality *HGBU-IFC8-FIAS Interface Specification* 2.20.23, summarised in
``/work/shared/reference/fias.md``: §4 guest records (GI p.39-42, GO p.43, GC p.44-47), §3 posting
answer (PA p.85-86, AS codes p.111-112).

Stateless: the link decides *whether* a record is welcome in its state, these functions only say what it
means. A record missing what it needs becomes ``Ignored`` with the reason.
"""

from __future__ import annotations

from datetime import date

from appliance.events import GuestChanged, GuestCheckedIn, GuestCheckedOut, Ignored
from pms_drivers.fias.records import FiasRecord, parse_date

GuestEvent = GuestCheckedIn | GuestCheckedOut | GuestChanged | Ignored


def guest_name(rec: FiasRecord) -> str:
    """``GN`` last name and ``GF`` first name as "Last, First" (either may be absent)."""
    last, first = rec.get("GN").strip(), rec.get("GF").strip()
    if last and first:
        return f"{last}, {first}"
    return last or first


def _flag(value: str) -> bool:
    return value.strip().upper() == "Y"


def guest_checked_in(rec: FiasRecord, raw: bytes) -> GuestEvent:
    """GI: a real-time check-in, or with ``SF`` a resync record that only updates what differs (p.39)."""
    room = rec.get("RN")
    if not room:
        return Ignored(reason="GI without RN", raw=raw)
    return GuestCheckedIn(
        room=room,
        guest_id=rec.get("G#"),
        name=guest_name(rec),
        share=_flag(rec.get("GS")),
        resync=rec.has("SF"),
        arrival=arrival_date(rec),
        raw=raw,
    )


def arrival_date(rec: FiasRecord) -> date | None:
    """``GA``, the arrival date (type D, YYMMDD; Spec p.40); None when absent or not a date (the check-in
    itself still counts)."""
    try:
        return parse_date(rec.get("GA").strip()) if rec.get("GA").strip() else None
    except ValueError:
        return None


def guest_checked_out(rec: FiasRecord, raw: bytes) -> GuestEvent:
    """GO: ``RN``, ``G#``, ``GS``, ``SF``; never a name. During a resync it may carry only RN + SF (p.43)."""
    room = rec.get("RN")
    if not room:
        return Ignored(reason="GO without RN", raw=raw)
    return GuestCheckedOut(
        room=room, guest_id=rec.get("G#"), share=_flag(rec.get("GS")), resync=rec.has("SF"), raw=raw
    )


def move_share_flags(rec: FiasRecord) -> tuple[bool, bool]:
    """The two ``GS`` flags of a GC room move: (new room's, old room's).

    Spec p.47: each GS follows the room it describes, as in ``RN312|GSN|RO332|GSY|`` (312 now holds only
    this guest, 332 still has someone). A GS is given to the nearest RN or RO before it; flags with no
    room before them fill the new room first, then the old one.
    """
    owner = ""
    new: str | None = None
    old: str | None = None
    loose: list[str] = []
    for key, value in rec.fields:
        if key in ("RN", "RO"):
            owner = key
        elif key == "GS":
            if owner == "RN" and new is None:
                new = value
            elif owner == "RO" and old is None:
                old = value
            else:
                loose.append(value)
    if new is None and loose:
        new = loose.pop(0)
    if old is None and loose:
        old = loose.pop(0)
    return _flag(new or ""), _flag(old or "")


def guest_changed(rec: FiasRecord, raw: bytes) -> GuestEvent:
    """GC: a data change, or with ``RO`` a room move from RO to RN (p.44-47)."""
    room = rec.get("RN")
    if not room:
        return Ignored(reason="GC without RN", raw=raw)
    old_room = rec.get("RO").strip()
    if old_room:
        share, old_share = move_share_flags(rec)
    else:
        share, old_share = _flag(rec.get("GS")), False
    return GuestChanged(
        room=room,
        guest_id=rec.get("G#"),
        name=guest_name(rec),
        share=share,
        old_room=old_room,
        old_room_share=old_share,
        raw=raw,
    )


GUEST_RECORDS = {"GI": guest_checked_in, "GO": guest_checked_out, "GC": guest_changed}


def answer_sequence(rec: FiasRecord) -> int | str:
    """The ``P#`` of a PA as an int, or the reason it has none usable (a str)."""
    if not rec.has("P#"):
        return "PA without P# (P# must be in the PA field list, fias.md §3)"
    text = rec.get("P#").strip()
    if not (text.isascii() and text.isdigit()):
        return f"PA with P# {text!r}, which is not a number"
    return int(text)
