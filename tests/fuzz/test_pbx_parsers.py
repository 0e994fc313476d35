"""Fuzz every PBX driver the entry points register (``appliance.registry.default_registry``): its
``parse_record`` and its link (framer, login, handshake), with random bytes and with mutated lines of the
driver's captures (``tests/captures``, with the options and time zone each capture declares).

The contract (ARCHITECTURE.md, "The sans-IO contract"): a record that cannot be parsed becomes
``Ignored(reason, raw)``; it never raises out of the parser or the link. A link may raise only
``ProtocolError``. A ``CallRecord`` that comes out is one the pipeline can store: an aware start, a
whole non-negative duration and a direction the schema knows.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import get_args
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from appliance.drivers import ParseContext
from appliance.errors import ProtocolError
from appliance.events import CallRecord, Direction, Event, Ignored
from appliance.registry import default_registry
from tests.fuzz import FUZZ
from tests.fuzz.mutate import mutated

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
REGISTRY = default_registry()
DIRECTIONS = set(get_args(Direction))


def setups(name: str) -> list[tuple[object, ParseContext, list[bytes]]]:
    """(options, context, seed lines) for each capture of driver ``name``; the default options and a
    UTC context when the driver has no capture."""
    found = []
    for path in sorted(CAPTURES.glob("*.yaml")):
        settings = yaml.safe_load(path.read_text())
        if settings.get("driver") != name:
            continue
        options = REGISTRY.options("pbx", name, settings.get("options") or {})
        context = ParseContext(tz=ZoneInfo(settings["timezone"]),
                               received_at=datetime.fromisoformat(settings["received_at"]))
        data = path.with_suffix(".txt").read_bytes()
        lines = [line for line in data.replace(b"\r\n", b"\n").split(b"\n") if line.strip()]
        found.append((options, context, lines or [data]))
    if not found:
        found.append((REGISTRY.options("pbx", name, {}),
                      ParseContext(tz=ZoneInfo("UTC"), received_at=datetime(2025, 3, 14, 12, 0)), [b""]))
    return found


DRIVERS = REGISTRY.names("pbx")
SETUPS = {name: setups(name) for name in DRIVERS}


def check_record(name: str, item: object) -> None:
    assert isinstance(item, (CallRecord, Ignored)), f"{name}: parse_record returned {item!r}"
    if isinstance(item, Ignored):
        assert item.reason, f"{name}: Ignored without a reason"
        return
    assert item.start.tzinfo is not None, f"{name}: naive start {item.start!r}"
    assert isinstance(item.duration, int) and item.duration >= 0, f"{name}: duration {item.duration!r}"
    assert item.direction in DIRECTIONS, f"{name}: direction {item.direction!r}"


def test_every_registered_driver_is_fuzzed() -> None:
    assert len(DRIVERS) >= 16 and "generic" in DRIVERS and not REGISTRY.broken


@pytest.mark.parametrize("name", DRIVERS)
@FUZZ
@given(data=st.data())
def test_parse_record_gives_a_call_or_ignored(name, data) -> None:
    spec = REGISTRY.get("pbx", name)
    options, context, lines = data.draw(st.sampled_from(SETUPS[name]))
    raw = data.draw(st.one_of(mutated(lines), st.binary(max_size=300)))
    check_record(name, spec.parse_record(raw, options, context))


@pytest.mark.parametrize("name", DRIVERS)
@FUZZ
@given(data=st.data())
def test_the_link_gives_events_or_a_protocol_error(name, data) -> None:
    spec = REGISTRY.get("pbx", name)
    options, _context, lines = data.draw(st.sampled_from(SETUPS[name]))
    chunks = data.draw(st.lists(st.one_of(mutated(lines).map(lambda b: b + b"\r\n"), st.binary(max_size=200)),
                                max_size=12))
    link = spec.make_link(options)
    now = 1_700_000_000.0
    try:
        events: list[Event] = list(link.connection_made(now))
        for chunk in chunks:
            events += link.receive_data(chunk, now)
            link.data_to_send()
            deadline = link.deadline()
            if deadline is not None:
                now = max(now, deadline)
                events += link.handle_timeout(now)
            now += 1
        events += link.connection_lost(now)
    except ProtocolError:
        return
    for event in events:
        if isinstance(event, Ignored):
            assert event.reason
