"""``appliance rerate``: re-rate stored calls with the tariff in force at the time and report differences.

The work is ``appliance.rerate.rerate`` (pure database functions); this module parses the window, runs it
in one transaction, and prints every difference. ``--from`` and ``--to`` are dates (or ISO times) in the
site's zone; both days are included. ``--dry-run`` computes and prints the report and writes nothing.
Posted charges are never changed: their differences are reported, and with ``--post-corrections`` (and
the guest still in house) posted as a refund or a supplementary charge. Calls held because the tariff
could not price them (a ``failed`` posting of 0, "not rated: ...") are each listed: re-opened with their
price once the tariff is fixed, or reported as still not rated.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, time, timedelta

from appliance.commands.common import add_config_option, load
from appliance.errors import ConfigError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rerate", help="re-rate stored calls and report every difference",
                                   description="Re-rate unposted and excluded calls, and calls held as not "
                                               "rated, with the tariff in force when they were made; report "
                                               "every difference.")
    parser.add_argument("--from", dest="start", required=True, metavar="DATE",
                        help="first day (site time), e.g. 2026-03-01, or an ISO time")
    parser.add_argument("--to", dest="end", required=True, metavar="DATE",
                        help="last day, included (site time), or an ISO time (excluded)")
    parser.add_argument("--dry-run", action="store_true", help="report only; change nothing")
    parser.add_argument("--post-corrections", action="store_true",
                        help="post the difference of posted charges as a refund or an extra charge "
                             "(guests still in house only)")
    add_config_option(parser)
    parser.set_defaults(func=run)


def window_edge(text: str, tz, option: str, *, end: bool) -> datetime:
    """A date means the start of that day (or, for the end, the start of the next); a time is exact."""
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date() + timedelta(days=1 if end else 0)
            return datetime.combine(day, time(), tzinfo=tz)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError([(option, f"{text!r} is not a date (2026-03-01) or an ISO time")]) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def run(args: argparse.Namespace, out=None, now: datetime | None = None) -> int:
    from appliance.db.session import make_engine, make_sessionmaker
    from appliance.rerate import format_report, rerate

    out = out or sys.stdout
    config = load(args)
    tz = config.site.tz
    start = window_edge(args.start, tz, "--from", end=False)
    end = window_edge(args.end, tz, "--to", end=True)
    if end <= start:
        raise ConfigError([("--to", "must be after --from")])
    now = now or datetime.now(tz)
    engine = make_engine(config.database.url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            report = rerate(session, config, start=start, end=end, now=now, dry_run=args.dry_run,
                            correct_posted=args.post_corrections)
            if args.dry_run:
                session.rollback()
            else:
                session.commit()
    finally:
        engine.dispose()
    for line in format_report(report, config.site.currency):
        print(line, file=out)
    return 0
