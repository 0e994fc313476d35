"""``appliance parse``: run a PBX driver over a capture file and print what it makes of every record.

The installer's tool for checking a driver and its options against a real SMDR capture before going live:
one JSON object per call on stdout; every quarantined record on stderr as ``line N: REASON: <raw>``, where
N is the input line the record ended on. Headers and blank lines pass silently. Exit status 1 when any
record was quarantined. The input is framed by the driver's own link, exactly as on a live link.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import datetime
from typing import IO, Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from appliance.drivers import DriverSpec, ParseContext
from appliance.errors import ConfigError
from appliance.events import CallRecord, Ignored, RecordReceived
from appliance.registry import default_registry
from pbx_drivers.common import call_to_json

# One physical line, ended by CR LF, LF or a lone CR (serial captures often use CR alone).
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "parse",
        help="parse a PBX capture with a driver and print the calls as JSON lines",
        description="Run a PBX driver over a capture: one JSON object per call on stdout, quarantined "
                    "records on stderr as 'line N: REASON: RAW'; exit status 1 if any was quarantined.",
    )
    parser.add_argument("--driver", required=True, help="PBX driver name (e.g. mitel_mivb, avaya_ipoffice)")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                        help="a driver option; VALUE is YAML (numbers, true/false, [lists]); a.b=1 nests")
    parser.add_argument("--timezone", default="UTC",
                        help="the site's IANA zone for record times (default UTC)")
    parser.add_argument("--received-at", metavar="ISO", default=None,
                        help="when the records arrived, for formats without a year (default: now)")
    parser.add_argument("file", metavar="FILE", help="capture file, or - for standard input")
    parser.set_defaults(func=run)
    return parser


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=[x, y]"]`` -> ``{"a": 1, "b": {"c": ["x", "y"]}}``; raises ConfigError on bad pairs."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError([(f"option {pair!r}", "write options as KEY=VALUE")])
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise ConfigError([(f"option.{key}", f"{text!r} is not a YAML value")]) from None
        *parents, leaf = key.split(".")
        target = options
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError([(f"option.{key}", f"{parent} is already set to a value")])
        target[leaf] = value
    return options


def _context(args: argparse.Namespace) -> ParseContext:
    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problem = f"{args.timezone!r} is not an IANA zone such as Europe/Berlin"
        raise ConfigError([("--timezone", problem)]) from None
    if args.received_at is None:
        received = datetime.now(tz)
    else:
        try:
            received = datetime.fromisoformat(args.received_at)
        except ValueError:
            raise ConfigError([("--received-at", f"{args.received_at!r} is not an ISO 8601 time")]) from None
        if received.tzinfo is None:
            received = received.replace(tzinfo=tz)
    return ParseContext(tz=tz, received_at=received)


def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    try:
        spec = registry.get("pbx", args.driver)
    except KeyError as exc:
        raise ConfigError([("--driver", str(exc.args[0]))]) from None
    options = registry.options("pbx", args.driver, parse_options(args.option))
    context = _context(args)
    if args.file == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.file, "rb")
        except OSError as exc:
            print(f"appliance parse: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        with stream:
            return parse_stream(stream, spec, options, context, sys.stdout, sys.stderr)
    except BrokenPipeError:
        # The reader went away (``appliance parse ... | head``): stop quietly, and keep the interpreter
        # from complaining again when it flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def parse_stream(stream: IO[bytes], spec: DriverSpec, options: Any, context: ParseContext,
                 out: IO[str], err: IO[str]) -> int:
    """Frame and parse everything in ``stream``; print calls to ``out`` and quarantined records to ``err``.

    The input is fed to the link one physical line at a time only so each record can be reported with
    the line it ended on; the framer would give the same records for any split.
    """
    assert spec.parse_record is not None, "registry.validate_spec guarantees a pbx driver parses"
    encoding = getattr(options, "encoding", "ascii")
    link = spec.make_link(options)
    quarantined = 0

    def report(events: list[Any], line_number: int) -> None:
        nonlocal quarantined
        for event in events:
            if isinstance(event, RecordReceived):
                event = spec.parse_record(event.raw, options, context)
            if isinstance(event, CallRecord):
                out.write(json.dumps(call_to_json(event, encoding)) + "\n")
            elif isinstance(event, Ignored) and event.quarantine:
                quarantined += 1
                err.write(f"line {line_number}: {event.reason}: {event.raw!r}\n")

    line_number = 0
    report(link.connection_made(0.0), line_number)
    for line_number, chunk in enumerate(_physical_lines(stream), start=1):
        report(link.receive_data(chunk, 0.0), line_number)
    report(link.connection_lost(0.0), line_number)  # what the framer held back belongs to the last line
    return 1 if quarantined else 0


def _physical_lines(stream: IO[bytes]) -> Iterator[bytes]:
    for chunk in stream:  # chunks end at LF, so a CR LF pair is never split between two of them
        yield from _LINE.findall(chunk)
