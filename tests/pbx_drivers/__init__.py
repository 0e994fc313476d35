"""Shared helpers for the PBX driver tests: the captures in ``tests/captures`` and a sans-IO link runner."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from appliance.drivers import DriverSpec, ParseContext
from appliance.events import CallRecord, Ignored, RecordReceived
from appliance.registry import DriverRegistry
from pbx_drivers import (
    asterisk,
    avaya_cm,
    avaya_ipoffice,
    cisco_cucm,
    freeswitch,
    generic,
    hipath,
    lg_ipecs,
    mitel_5000,
    mitel_mivb,
    nec_sv8100,
    nec_sv9500,
    nortel_cs1000,
    panasonic,
    samsung_officeserv,
    threecx,
)
from pbx_drivers.common import call_to_json

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
# The captures ``tests/test_parse_command.py`` prints line by line (one call per non-blank line).
CAPTURE_NAMES = ("mitel_mivb", "avaya_ipoffice", "asterisk_generic", "hipath_generic")
ALL_SPECS = [module.SPEC for module in (
    generic, mitel_mivb, avaya_ipoffice, avaya_cm, mitel_5000, nec_sv8100, nec_sv9500, panasonic, cisco_cucm,
    asterisk, freeswitch, threecx, hipath, samsung_officeserv, nortel_cs1000, lg_ipecs)]
REGISTRY = DriverRegistry(ALL_SPECS)
SPLITS = ("whole", "bytewise", "trailing")


@dataclass(frozen=True)
class Capture:
    name: str
    spec: DriverSpec
    options: Any
    context: ParseContext
    data: bytes
    expected: list[dict[str, Any]]
    settings: dict[str, Any]

    @property
    def path(self) -> Path:
        return CAPTURES / f"{self.name}.txt"


def load_capture(name: str) -> Capture:
    settings = yaml.safe_load((CAPTURES / f"{name}.yaml").read_text())
    tz = ZoneInfo(settings["timezone"])
    expected = [json.loads(line) for line in (CAPTURES / f"{name}.expected.jsonl").read_text().splitlines()]
    return Capture(
        name=name,
        spec=REGISTRY.get("pbx", settings["driver"]),
        options=REGISTRY.options("pbx", settings["driver"], settings["options"] or {}),
        context=ParseContext(tz=tz, received_at=datetime.fromisoformat(settings["received_at"])),
        data=(CAPTURES / f"{name}.txt").read_bytes(),
        expected=expected,
        settings=settings,
    )


def run_link(spec: DriverSpec, options: Any, chunks: Iterable[bytes]) -> list[RecordReceived | Ignored]:
    """Feed ``chunks`` to a fresh link of the driver, then close it; the framed records and framer Ignored."""
    link = spec.make_link(options)
    events: list[Any] = list(link.connection_made(0.0))
    for chunk in chunks:
        events += link.receive_data(chunk, 0.0)
    events += link.connection_lost(0.0)
    return [event for event in events if isinstance(event, (RecordReceived, Ignored))]


def parse_capture(capture: Capture, chunks: Iterable[bytes]) -> list[CallRecord | Ignored]:
    """Frame and parse, as ``appliance parse`` does: records become calls or Ignored."""
    out: list[CallRecord | Ignored] = []
    for event in run_link(capture.spec, capture.options, chunks):
        if isinstance(event, RecordReceived):
            assert capture.spec.parse_record is not None
            out.append(capture.spec.parse_record(event.raw, capture.options, capture.context))
        else:
            out.append(event)
    return out


def call_fields(call: CallRecord) -> dict[str, Any]:
    """The call as the expected-events files write it: ``appliance parse`` JSON without ``raw``."""
    fields = call_to_json(call)
    del fields["raw"]
    return fields


def calls_only(results: Iterable[object]) -> list[CallRecord]:
    return [result for result in results if isinstance(result, CallRecord)]


def quarantined(results: Iterable[object]) -> list[Ignored]:
    return [result for result in results if isinstance(result, Ignored) and result.quarantine]


def chunks_for(data: bytes, split: str, trailing: bytes = b"") -> list[bytes]:
    """The capture fed whole, one byte at a time, or whole with a cut-off record after it."""
    if split == "bytewise":
        return [data[i:i + 1] for i in range(len(data))]
    if split == "trailing":
        return [data, trailing]
    return [data]


def check_capture(capture: Capture, split: str, trailing: bytes) -> None:
    """Every call of the capture comes out as expected, in order, however the bytes arrive; nothing
    but the cut-off record after it (``trailing``) is quarantined."""
    results = parse_capture(capture, chunks_for(capture.data, split, trailing))
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    bad = quarantined(results)
    if split == "trailing":
        assert len(bad) == 1, bad
        assert trailing.strip(b"\x02\r\n\x00") in bad[0].raw
    else:
        assert bad == [], bad


def check_any_split(capture: Capture, cuts: list[int]) -> None:
    """The property: any split of the capture gives the same calls as the whole capture."""
    points = sorted({min(max(cut, 0), len(capture.data)) for cut in cuts})
    pieces = [capture.data[a:b] for a, b in zip([0, *points], [*points, len(capture.data)])]
    results = parse_capture(capture, pieces)
    assert [call_fields(call) for call in calls_only(results)] == capture.expected
    assert quarantined(results) == []


