"""``appliance simulate pbx|pms``: the PBX and PMS simulators installers and tests use."""

from __future__ import annotations

import argparse
import signal
import sys

from appliance.commands.common import start_logging
from appliance.config import expand_numbers


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("simulate", help="run a simulated PBX or PMS")
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="pbx|pms")

    pbx = kinds.add_parser("pbx", help="print realistic SMDR records in a driver's format")
    pbx.add_argument("--driver", required=True, help="the PBX driver whose format to emit")
    pbx.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="driver option")
    where = pbx.add_mutually_exclusive_group(required=True)
    where.add_argument("--connect", metavar="HOST:PORT", help="connect to the appliance (its tcp-server link)")
    where.add_argument("--listen", metavar="[HOST:]PORT", help="wait for the appliance to connect")
    where.add_argument("--serial", metavar="DEVICE", help="write to a serial device")
    pbx.add_argument("--baudrate", type=int, default=9600)
    pbx.add_argument("--rate", type=float, default=1.0, help="calls per second (default 1)")
    pbx.add_argument("--count", type=int, default=0, help="stop after this many calls (0: run until stopped)")
    pbx.add_argument("--extensions", default="101-120", help="extensions that make calls, e.g. 101-120,201-210")
    pbx.add_argument("--timezone", default="UTC")
    pbx.add_argument("--seed", type=int, default=1)
    pbx.add_argument("--record", help="append every generated call to this file as JSON lines")
    pbx.add_argument("--buffer", type=int, default=3000, help="records kept while no collector listens")
    pbx.add_argument("--replay", type=int, default=0,
                     help="after a reconnect, send the last N records again (as many PBXs do)")
    pbx.add_argument("--linger", type=float, default=2.0,
                     help="with --count: stay this many seconds connected after the last record before exiting")
    pbx.set_defaults(func=run_pbx)

    from appliance.commands import simulate_pms

    pms = kinds.add_parser("pms", help="a FIAS PMS (Opera IFC8-like) that answers postings")
    simulate_pms.configure(pms)
    pms.set_defaults(func=simulate_pms.run)


def run_pbx(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    import yaml
    from twisted.internet import reactor

    from appliance.net.pbx_simulator import PbxSimulator, make_pbx_simulator
    from appliance.registry import default_registry

    registry = default_registry()
    spec = registry.get("pbx", args.driver)
    raw_options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        raw_options[key] = yaml.safe_load(value)
    options = registry.options("pbx", args.driver, raw_options)
    start_logging("info")
    record = open(args.record, "a", encoding="utf-8") if args.record else None
    simulator = PbxSimulator(
        spec, options, reactor=reactor, rate=args.rate, count=args.count,
        extensions=expand_numbers(args.extensions), seed=args.seed, tz=ZoneInfo(args.timezone),
        record=record, buffer=args.buffer, replay=args.replay, linger=args.linger, on_done=reactor.stop,
    )
    make_pbx_simulator(simulator, reactor, connect=args.connect or "", listen=args.listen or "",
                       serial=args.serial or "", baudrate=args.baudrate)
    simulator.startService()
    signal.signal(signal.SIGTERM, lambda *_: reactor.callFromThread(reactor.stop))
    reactor.addSystemEventTrigger("before", "shutdown", simulator.stopService)
    reactor.run()
    print(f"generated {simulator.generated}, sent {simulator.sent}, dropped {simulator.dropped}", file=sys.stderr)
    return 0
