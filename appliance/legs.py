"""Transfer legs: several PBX records that are one call, joined so the call is charged once.

``/work/shared/reference/smdr.md`` §0 finding 5: a transferred or forwarded call produces several records.
IP Office writes one segment per party with the same Call ID, every one but the last flagged "continuation"
(§2.2); Nortel CS1000 writes S (start), X (transferred) and E (end) records on the same trunk (§2.13); NEC
NEAX condition B says "billing is continued" (§2.5). The drivers mark such a record with
``transfer == CONTINUED`` and put the key that joins the legs in ``call_id``; the record that ends the call
carries the same ``call_id`` without the mark.

This module is pure: no database, no clock. The pipeline (see the driver docs for the exact change) keeps
a continued leg back as a ``leg`` row instead of charging it, and when the next record with the same link
and ``call_id`` arrives it calls ``merge_legs`` over the held legs and that record and charges the result.

How the merged call reads (one guest dials out, then transfers the caller to another room):

- the first OUTGOING leg (by start) is the call: its start, extension, trunk, dialled number and account
  code. A guest who dialled out pays for the call even after handing it on; when no leg went out on a
  trunk (incoming or internal calls passed around) the first leg is the call.
- duration: the talk time of the legs that count (the outgoing ones, else all), added up; answered when
  any of them was.
- transfer: ``T:<extension>`` naming the last other extension that held the call, as Mitel prints a
  supervised transfer in its third-party field.
- raw: the legs' raw records joined by LF, oldest first, so the stored call shows every record it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from appliance.events import CallRecord

CONTINUED = "continued"
# Legs further apart than this are not one call, whatever their keys say: Nortel keys legs by trunk
# member, which a later call reuses, and a lost last leg must not capture a call made days later.
MAX_CALL_SPAN = timedelta(hours=24)


def leg_key(call: CallRecord) -> str | None:
    """The key that joins this record with the other legs of its call, or None when it has none."""
    return call.call_id or None


def is_continued(call: CallRecord) -> bool:
    """True for a leg that is not the last of its call: keep it back until the call ends."""
    return call.transfer == CONTINUED and bool(call.call_id)


def belongs(held: CallRecord, call: CallRecord) -> bool:
    """Whether a held leg is part of ``call``: same key and started within ``MAX_CALL_SPAN`` of it."""
    return held.call_id == call.call_id and abs(call.start - held.start) <= MAX_CALL_SPAN


def merge_legs(legs: Sequence[CallRecord]) -> CallRecord:
    """The one call that ``legs`` (held legs and the last one, any order) make. Raises ValueError when
    given nothing, or legs with different keys."""
    if not legs:
        raise ValueError("no legs to merge")
    if len({leg.call_id for leg in legs}) != 1:
        raise ValueError(f"legs of different calls: {sorted({leg.call_id for leg in legs})}")
    # sorted() is stable: legs that started at the same second (IP Office gives every segment the call's
    # start) keep the order they arrived in.
    ordered = sorted(legs, key=lambda leg: leg.start)
    outgoing = [leg for leg in ordered if leg.direction == "outgoing"]
    counted = outgoing or ordered
    base = counted[0]
    others = [leg.extension for leg in counted if leg.extension and leg.extension != base.extension]
    return replace(
        base,
        duration=sum(leg.duration for leg in counted if leg.answered),
        answered=any(leg.answered for leg in counted),
        ring=base.ring,
        transfer=f"T:{others[-1]}" if others else "",
        raw=b"\n".join(leg.raw for leg in ordered),
    )
