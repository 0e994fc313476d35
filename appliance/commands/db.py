"""``appliance db upgrade|current``: apply the alembic migrations shipped in the package."""

from __future__ import annotations

import argparse

from appliance.commands.common import add_config_option, load


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database schema: upgrade or show the revision")
    parser.add_argument("action", choices=["upgrade", "current"])
    add_config_option(parser)
    parser.add_argument("--database-url", help="use this URL instead of the configuration's")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.db.session import current_revision, head_revision, make_engine, upgrade

    url = args.database_url or load(args).database.url
    if args.action == "upgrade":
        upgrade(url)
    engine = make_engine(url)
    current = current_revision(engine)
    engine.dispose()
    print(f"database at revision {current} (head {head_revision()})")
    return 0
