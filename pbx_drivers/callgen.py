"""Realistic hotel calls for the simulator, the demo and property tests.

Mostly guests dialling out (local, long distance, international, toll-free), some incoming and internal
calls, some unanswered; numbers in the North American shape by default. ``dialled`` holds the digits
sent on the trunk, without the outside-line access code, as the PBX drivers report them. The same
``random.Random`` state gives the same call, so a test or a demo run can be replayed.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Mapping, Sequence

from appliance.events import CallRecord

# Relative weights of the kinds of call (guest calling today: short local calls dominate, see domain.md).
DEFAULT_MIX: Mapping[str, float] = {
    "local": 40, "long_distance": 18, "international": 7, "toll_free": 8, "incoming": 15, "internal": 12,
}
UNANSWERED_SHARE = 0.12
# Country code and national number length for the international calls guests make most.
COUNTRIES = (("44", 10), ("33", 9), ("49", 10), ("52", 10), ("81", 10), ("61", 9), ("34", 9), ("39", 10),
             ("86", 11), ("91", 10))
TOLL_FREE = ("800", "888", "877", "866", "855", "844", "833")


def generate_call(
    rng: random.Random,
    start: datetime,
    extensions: Sequence[str],
    trunks: Sequence[str],
    *,
    mix: Mapping[str, float] | None = None,
    area_code: str = "212",
) -> CallRecord:
    """One call starting at ``start`` (seconds precision kept; tzinfo kept) from or to one of the
    ``extensions`` over one of the ``trunks``. ``mix`` weighs the kinds listed in ``DEFAULT_MIX``."""
    weights = dict(mix if mix is not None else DEFAULT_MIX)
    unknown = set(weights) - set(DEFAULT_MIX)
    if unknown:
        raise ValueError(f"unknown call kinds {sorted(unknown)}; use {', '.join(DEFAULT_MIX)}")
    kind = rng.choices(list(weights), weights=list(weights.values()))[0]
    extension = rng.choice(extensions)
    answered = rng.random() >= UNANSWERED_SHARE
    start = start.replace(microsecond=0)
    if kind == "internal":
        others = [ext for ext in extensions if ext != extension] or [extension]
        return CallRecord(
            start=start, duration=_talk(rng, 60) if answered else 0, ring=rng.randint(2, 20),
            extension=extension, trunk="", dialled=rng.choice(others), caller="", direction="internal",
            answered=answered,
        )
    if kind == "incoming":
        withheld = rng.random() < 0.1
        return CallRecord(
            start=start, duration=_talk(rng, 150) if answered else 0,
            ring=rng.randint(1, 25 if answered else 40),
            extension=extension, trunk=rng.choice(trunks), dialled="",
            caller="" if withheld else _nanp(rng, rng.choice((area_code, _npa(rng)))), direction="incoming",
            answered=answered,
        )
    dialled = {
        "local": lambda: _nanp(rng, area_code),
        "long_distance": lambda: "1" + _nanp(rng, _npa(rng)),
        "international": lambda: _international(rng),
        "toll_free": lambda: "1" + rng.choice(TOLL_FREE) + _nxx(rng) + f"{rng.randrange(10000):04d}",
    }[kind]()
    mean = {"local": 150, "long_distance": 300, "international": 420, "toll_free": 240}[kind]
    return CallRecord(
        start=start, duration=_talk(rng, mean) if answered else 0, ring=None, extension=extension,
        trunk=rng.choice(trunks), dialled=dialled, caller="", direction="outgoing", answered=answered,
        account_code=f"{rng.randrange(10000):04d}" if rng.random() < 0.03 else "",
    )


def _talk(rng: random.Random, mean: float) -> int:
    """Talk time in seconds: many short calls, a long tail, capped at four hours."""
    return max(1, min(4 * 3600, round(rng.expovariate(1 / mean))))


def _npa(rng: random.Random) -> str:
    """A plausible area code: NXX, not N11, not 555, not a toll-free or 9xx code."""
    while True:
        npa = f"{rng.randint(2, 8)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        if npa[1:] != "11" and npa != "555" and npa not in TOLL_FREE:
            return npa


def _nxx(rng: random.Random) -> str:
    """A central office code: first digit 2-9, not N11, not 555 (reserved for fiction)."""
    while True:
        nxx = f"{rng.randint(2, 9)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        if nxx[1:] != "11" and nxx != "555":
            return nxx


def _nanp(rng: random.Random, npa: str) -> str:
    return npa + _nxx(rng) + f"{rng.randrange(10000):04d}"


def _international(rng: random.Random) -> str:
    code, length = rng.choice(COUNTRIES)
    return "011" + code + str(rng.randint(1, 9)) + "".join(str(rng.randrange(10)) for _ in range(length - 1))
