"""``appliance simulate pms``: run the PMS simulator (Oracle FIAS 2.20.23, fias.md §6; HOBIC and STX, §7).

``appliance.commands.simulate`` builds the ``simulate pms`` parser and calls ``configure(parser)`` and
``run(args)`` from here. ``python -m appliance.commands.simulate_pms ...`` runs it directly (the tests do).

Example::

    appliance simulate pms --listen 127.0.0.1:5010 --rooms 101-120,201-210 --record postings.jsonl \\
        --control 127.0.0.1:5011 --fault-every 50:lose-pa
    printf 'checkin 305 4711 "Smith, John"\\nstats\\n' | nc 127.0.0.1 5011
    appliance simulate pms --serial /dev/ttyUSB1 --baudrate 9600 --parity E   # FIAS, LRC + ACK/NAK on
    appliance simulate pms --protocol hobic --serial /dev/pts/5 --option acknowledgement=y-n
    appliance simulate pms --protocol stx_posting --listen 127.0.0.1:5012 --options-file stx.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import datetime, timedelta
from typing import Any

from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)

from appliance.net.pms_simulator import PmsSimulator, make_pms_simulator_service, parse_host_port, server_tls
from pms_drivers.fias.peer_model import Fault, parse_fault, seeded_roster
from pms_drivers.fias.records import check_encoding


def parse_rooms(text: str) -> list[str]:
    """``101-120,201-210,0412`` -> room numbers, keeping leading zeros (``0412`` is not ``412``)."""
    rooms: list[str] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        first, sep, last = part.partition("-")
        if not sep:
            rooms.append(part)
            continue
        if not (first.isdigit() and last.isdigit()) or int(last) < int(first):
            raise argparse.ArgumentTypeError(
                f"room range {part!r} must be FIRST-LAST with digits, FIRST <= LAST"
            )
        if int(last) - int(first) > 10_000:
            raise argparse.ArgumentTypeError(f"room range {part!r} is more than 10000 rooms")
        rooms += [str(number).zfill(len(first)) for number in range(int(first), int(last) + 1)]
    return rooms


def parse_repeating_fault(text: str) -> tuple[int, Fault]:
    """``N:FAULT``, e.g. ``50:lose-pa``, ``10:RY``, ``20:late-pa=45``."""
    every, sep, fault = text.partition(":")
    if not sep or not every.isdigit() or int(every) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not N:FAULT (e.g. 50:lose-pa or 10:RY)")
    try:
        return int(every), parse_fault(fault)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address(text: str) -> str:
    try:
        parse_host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _encoding(text: str) -> str:
    try:
        check_encoding(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="fias",
        help="fias (default), hobic (a call record line per charge) or stx_posting (STX/ETX/BCC + ENQ)",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--listen",
        type=_address,
        metavar="HOST:PORT",
        help="address of the port the vendor connects to (port 0 picks a free one)",
    )
    where.add_argument(
        "--serial",
        metavar="DEVICE",
        help="play the PMS on a serial device or one end of a pseudo-terminal; FIAS then uses LRC and "
        "ACK/NAK (Spec p.93-96) unless --no-lrc / --no-ack-nak",
    )
    parser.add_argument("--baudrate", type=int, default=9600, help="serial line speed (default 9600)")
    parser.add_argument("--bytesize", type=int, choices=(7, 8), default=8)
    parser.add_argument("--parity", choices=("N", "E", "O"), default="N")
    parser.add_argument("--stopbits", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hobic / stx_posting: a driver option as the appliance's YAML has it (VALUE is YAML)",
    )
    parser.add_argument(
        "--options-file",
        metavar="FILE",
        help="hobic / stx_posting: a YAML mapping of driver options (the pms link's options: block)",
    )
    parser.add_argument("--tls-cert", metavar="PEM", help="listen with TLS, this certificate (FIAS 2.20.24)")
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument("--tls-ca", metavar="PEM", help="require a vendor certificate signed by this CA")
    parser.add_argument(
        "--rooms",
        type=parse_rooms,
        default=[],
        metavar="RANGES",
        help="check one generated guest into each room at start (arrived yesterday), e.g. 101-120,201-210",
    )
    parser.add_argument(
        "--encoding",
        type=_encoding,
        default="cp850",
        help="code page of the FIAS records (cp850, cp1252, latin-1, utf-8); default cp850",
    )
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="append every PS received to FILE as one JSON line, before its PA is sent",
    )
    parser.add_argument(
        "--control",
        type=_address,
        metavar="HOST:PORT",
        help="line-based control port (checkin, checkout, move, fault, night-audit, stats ...)",
    )
    parser.add_argument(
        "--answer",
        choices=("roster", "ok", "ng"),
        default="roster",
        help="roster: OK for checked-in rooms, NG otherwise (default); ok: always OK; ng: always NG",
    )
    parser.add_argument(
        "--fault-every",
        type=parse_repeating_fault,
        action="append",
        default=[],
        metavar="N:FAULT",
        help="repeat a fault on every Nth posting: an AS code (10:RY), lose-pa, late-pa=SECONDS, "
        "duplicate-pa or drop-after-ps; may be given several times",
    )
    parser.add_argument("--lrc", action=argparse.BooleanOptionalAction, default=None,
                        help="FIAS: frame records with an LRC byte (default: on with --serial)")
    parser.add_argument("--ack-nak", action=argparse.BooleanOptionalAction, default=None,
                        help="FIAS: acknowledge records with ACK/NAK/ENQ (default: on with --serial)")
    parser.add_argument(
        "--wait-for-ls",
        action="store_true",
        help="do not open with LS on connect; wait for the vendor's LS (tests listen-before-open)",
    )
    parser.add_argument("--verbose", action="store_true", help="also log every record sent to the vendor")


PROTOCOLS = ("fias", "hobic", "stx_posting")


def line_peer(args: argparse.Namespace) -> Any:
    """The peer for --protocol hobic / stx_posting, built with the driver options the appliance uses
    (so both ends agree on the layout); None for FIAS."""
    if args.protocol == "fias":
        return None
    import yaml

    from appliance.registry import default_registry

    data: dict[str, Any] = {}
    if args.options_file:
        with open(args.options_file, encoding="utf-8") as handle:
            data.update(yaml.safe_load(handle) or {})
    for item in args.option:
        key, _, value = item.partition("=")
        data[key] = yaml.safe_load(value)
    options = default_registry().options("pms", args.protocol, data)
    if args.protocol == "hobic":
        from pms_drivers.hobic_peer import HobicPmsPeer

        return HobicPmsPeer(options)
    from pms_drivers.stx_peer import StxPmsPeer

    return StxPmsPeer(options)


def _plain_line(event: LogEvent) -> str:
    stamp = datetime.fromtimestamp(event.get("log_time", 0)).strftime("%Y-%m-%d %H:%M:%S")
    level = event.get("log_level")
    text = formatEvent(event)
    if "log_failure" in event:
        text += "\n" + event["log_failure"].getTraceback()
    return f"{stamp} {level.name if level else 'info'}: {text}\n"


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT on the global reactor (this is a CLI entry point)."""
    from twisted.internet import reactor

    level = LogLevel.debug if args.verbose else LogLevel.info
    observer = FilteringLogObserver(
        FileLogObserver(sys.stdout, _plain_line), [LogLevelFilterPredicate(defaultLogLevel=level)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    failed: list[str] = []

    def on_error(failure: object) -> None:
        failed.append(str(failure))
        if reactor.running:  # type: ignore[attr-defined]
            reactor.stop()  # type: ignore[attr-defined]

    with contextlib.ExitStack() as stack:
        record_file = stack.enter_context(open(args.record, "a", encoding="utf-8")) if args.record else None
        serial = bool(args.serial)
        simulator = PmsSimulator(
            clock=reactor,
            encoding=args.encoding,
            lrc=serial if args.lrc is None else args.lrc,
            ack_nak=serial if args.ack_nak is None else args.ack_nak,
            peer=line_peer(args),
            serial=serial,
            answer_policy=args.answer,
            open_with_ls=not args.wait_for_ls,
            # In-house guests arrived yesterday (GA), so calls made before a resync fall into their stays
            # whatever the hotel's time zone.
            roster=seeded_roster(args.rooms, arrival=(datetime.now() - timedelta(days=1)).date()),
            record_file=record_file,
        )
        for every, fault in args.fault_every:
            simulator.peer.faults.every(every, fault)
        service = make_pms_simulator_service(
            simulator,
            reactor=reactor,  # type: ignore[arg-type]
            listen=args.listen or "",
            control=args.control,
            on_error=on_error,
            serial={"device": args.serial, "baudrate": args.baudrate, "bytesize": args.bytesize,
                    "parity": args.parity, "stopbits": args.stopbits} if serial else None,
            tls=server_tls(args.tls_cert, args.tls_key, args.tls_ca or "") if args.tls_cert else None,
        )
        reactor.callWhenRunning(service.startService)  # type: ignore[attr-defined]
        reactor.addSystemEventTrigger("before", "shutdown", service.stopService)  # type: ignore[attr-defined]
        reactor.run()  # type: ignore[attr-defined]
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="appliance simulate pms", description=__doc__.splitlines()[0])
    configure(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
