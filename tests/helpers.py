"""Test helpers: a tiny CSV PBX driver and a configuration built around it.

The pipeline tests use this driver rather than a real one so that they test the pipeline, not a format:
``start_iso,duration,extension,dialled,direction,answered`` per line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appliance.config import parse_config
from appliance.drivers import DriverSpec, FramedLink, ParseContext
from appliance.events import CallRecord, Ignored
from appliance.framing import LineFramer
from appliance.registry import DriverRegistry
from pms_drivers.fias.link import SPEC as FIAS_SPEC


@dataclass(frozen=True, kw_only=True)
class CsvOptions:
    pass


def parse_csv(raw: bytes, options: Any, context: ParseContext) -> CallRecord | Ignored:
    try:
        start, duration, extension, dialled, direction, answered = raw.decode("ascii").split(",")
        moment = datetime.fromisoformat(start)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=context.tz)
        return CallRecord(start=moment, duration=int(duration), ring=None, extension=extension, trunk="1",
                          dialled=dialled if direction == "outgoing" else "",
                          caller=dialled if direction == "incoming" else "",
                          direction=direction, answered=answered == "1", raw=raw)  # type: ignore[arg-type]
    except (ValueError, UnicodeDecodeError) as exc:
        return Ignored(reason=f"not a test CSV record: {exc}", raw=raw)


def format_csv(call: CallRecord, options: Any) -> bytes:
    number = call.dialled or call.caller
    return (f"{call.start.isoformat()},{call.duration},{call.extension},{number},{call.direction},"
            f"{int(call.answered)}\r\n").encode()


CSV_SPEC = DriverSpec(name="testcsv", kind="pbx", options=CsvOptions,
                      make_link=lambda options: FramedLink(LineFramer(max_length=200)),
                      transports=frozenset({"serial", "tcp-client", "tcp-server", "file"}),
                      parse_record=parse_csv, format_record=format_csv)


def registry() -> DriverRegistry:
    return DriverRegistry([CSV_SPEC, FIAS_SPEC])


def make_config(db_url: str, **overrides: Any):
    data = {
        "site": {"name": "Test Hotel", "country": "US", "timezone": "America/New_York", "currency": "USD",
                 "access_code": "9", "local_exchange": "212"},
        "database": {"url": db_url},
        "pbx": [{"name": "pbx", "driver": "testcsv", "transport": "tcp-server", "host": "127.0.0.1",
                 "port": 1}],
        "pms": {"name": "pms", "driver": "fias", "transport": "tcp-client", "host": "127.0.0.1", "port": 1},
        "extensions": [{"numbers": "101-120", "category": "guest"},
                       {"numbers": "150", "category": "lobby"}],
        # The tariff shape of appliance/tariffs.py: a main plan whose first version is the top-level keys.
        # Weekday evenings are cheaper for national calls only, so local calls (the pipeline tests) cost the
        # same at any hour; a staff plan rates lobby phones at zero.
        "tariff": {"name": "test", "markup_percent": 10, "surcharge_per_call": "0.50", "grace_seconds": 10,
                   "rounding": "0.01", "rounding_mode": "up", "free_numbers": ["+18005550100"],
                   "default": {"per_minute": "0.30"},
                   "classes": {"local": {"per_minute": "0.10"},
                               "national": {"per_minute": "0.25", "band_per_minute": {"evening": "0.15"}},
                               "international": {"connect": "0.50", "per_minute": "1.20", "increment": 6}},
                   "prefixes": {"44": {"name": "United Kingdom", "connect": "0.50", "per_minute": "1.20",
                                       "increment": 6}},
                   "bands": [{"name": "evening", "days": ["mon-fri"], "start": "19:00", "end": "07:00"}],
                   "plans": {"staff": {"default": {"per_minute": "0"}}},
                   "select": [{"categories": ["lobby"], "plan": "staff"}]},
    }
    for key, value in overrides.items():
        data[key] = value
    return parse_config(data, "test", registry=registry())
