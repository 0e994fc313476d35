"""``appliance rate``: price one call as the daemon would and explain it, for "why did this cost 7.40".

Classification and rating are the pipeline's (appliance.numbering, appliance.rating) over the site and
tariff of ``--config``; nothing is written to the database. ``--at`` is ISO 8601, in the site's zone when
it has no offset (default: now). The category comes from ``--extension`` through the extension table the
daemon routes with (``appliance.extensions``), or through the configured ranges when the database cannot
be read (``guest`` without an extension), or from ``--category``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import make_url

from appliance.commands.common import add_config_option, load
from appliance.errors import ConfigError
from appliance.numbering import Classifier, plan_for_site
from appliance.rating import RatingInput, TariffBook, explain, rate
from appliance.tariffs import CATEGORIES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rate", help="price one call with the configured tariff and explain it",
                                   description="Classify and rate one call as the daemon would, and print "
                                               "the breakdown in words and the amount.")
    parser.add_argument("--number", required=True, help="the digits dialled, as the PBX reports them")
    parser.add_argument("--duration", required=True, type=int, help="talk time in seconds")
    parser.add_argument("--extension", default="", help="the calling extension (decides the category)")
    parser.add_argument("--category", choices=CATEGORIES, help="override the extension's category")
    parser.add_argument("--trunk", default="", help="the trunk the call left on (for select rules)")
    parser.add_argument("--at", default=None, metavar="TIME",
                        help="when the call started, ISO 8601, site time if no offset (default: now)")
    parser.add_argument("--json", action="store_true", help="print the stored breakdown as JSON too")
    add_config_option(parser)
    parser.set_defaults(func=run)


def _extension(config, number: str) -> tuple[str, str]:
    if not number:
        return "guest", ""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from appliance.db.session import make_engine
    from appliance.extensions import ExtensionDirectory

    directory = ExtensionDirectory(fallback=config.extension_map())
    url = config.database.url
    if url.startswith("sqlite") and not Path(make_url(url).database or "").is_file():
        return directory.get(number)  # no database here (a laptop, a copy of the file)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            directory.load(session, datetime.now(config.site.tz))
    except SQLAlchemyError:
        pass  # a database that cannot be read: the configuration's ranges answer
    finally:
        engine.dispose()
    return directory.get(number)


def parse_time(text: str | None, tz, option: str = "--at") -> datetime:
    if text is None:
        return datetime.now(tz)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError([(option, f"{text!r} is not an ISO 8601 time such as 2026-03-14T21:30")]) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def run(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    config = load(args)
    if args.duration < 0:
        raise ConfigError([("--duration", "must be 0 or more seconds")])
    start = parse_time(args.at, config.site.tz)
    category, room = _extension(config, args.extension)
    category = args.category or category
    classify = Classifier(plan_for_site(config.site, free_numbers=config.tariff.free_numbers))
    book = TariffBook(config.tariff, config.site.tz)
    rating = rate(RatingInput(classification=classify(args.number), duration=args.duration, start=start,
                              trunk=args.trunk, category=category), book)
    who = f"category {category}"
    if args.extension:
        who = f"extension {args.extension} ({category}{', room ' + room if room else ''})"
    print(f"{who}, trunk {args.trunk or '-'}", file=out)
    print(explain(rating, config.site.currency), file=out)
    verdict = "charged" if rating.chargeable else "not charged"
    amount = rating.amount
    if amount.as_tuple().exponent > -2:  # type: ignore[operator]
        amount = amount.quantize(Decimal("0.01"))  # 0 reads 0.00, 5 reads 5.00
    print(f"amount: {config.site.currency} {amount} ({verdict})", file=out)
    if args.json:
        print(json.dumps(rating.breakdown, indent=2, ensure_ascii=False), file=out)
    return 0
