"""atheris target: the generic PBX driver (fixed-width and CSV layouts described in YAML,
``docs/generic-driver.md``).

The first input byte picks the layout: one of the generic captures' options (``tests/captures``) or a
CSV layout; the rest is one record line. ``parse_record`` must return a ``CallRecord`` or ``Ignored``
and never raise.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import atheris
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with atheris.instrument_imports():
    from appliance.drivers import ParseContext
    from appliance.events import CallRecord, Ignored
    from appliance.registry import default_registry
    from pbx_drivers.generic import parse_record


def _layouts() -> list[tuple[object, ParseContext]]:
    registry = default_registry()
    layouts = []
    for path in sorted((ROOT / "tests" / "captures").glob("*_generic.yaml")):
        settings = yaml.safe_load(path.read_text())
        layouts.append((registry.options("pbx", "generic", settings["options"]),
                        ParseContext(tz=ZoneInfo(settings["timezone"]),
                                     received_at=datetime.fromisoformat(settings["received_at"]))))
    if not layouts:
        raise SystemExit("no generic capture found in tests/captures")
    return layouts


LAYOUTS = _layouts()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    options, context = LAYOUTS[data[0] % len(LAYOUTS)]
    result = parse_record(data[1:], options, context)
    if not isinstance(result, (CallRecord, Ignored)):
        raise TypeError(f"parse_record returned {type(result).__name__}")
    if isinstance(result, CallRecord) and (result.duration < 0 or result.start.tzinfo is None):
        raise ValueError(f"impossible call: {result!r}")


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
