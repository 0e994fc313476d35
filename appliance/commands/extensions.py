"""``appliance extensions``: the extension table (``appliance.extensions``) from the shell.

    appliance extensions import --from-config [--config FILE]     replace the table with the file's ranges
    appliance extensions import --csv FILE [--config FILE]        replace the table with a CSV
    appliance extensions export [--config FILE]                   print the table as CSV

The table is the source of truth once it is filled: the daemon only seeds an empty table from the
configuration file. ``import`` is how an installer replaces it wholesale (a new numbering plan); it prints
what changed and writes it to the audit log as user ``cli``. The CSV has a header line
``extension,category,room,description``; an error names the line and nothing is changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from appliance import audit
from appliance.commands.common import add_config_option, load
from appliance.db.models import Extension
from appliance.db.session import make_engine, make_sessionmaker
from appliance.extensions import replace_all, rows_from_config, rows_from_csv, rows_to_csv

ACTOR = "cli"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("extensions", help="import or export the extension table",
                                   description="Replace the extension table from the configuration or a CSV, "
                                               "or print it as CSV.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="replace the extension table")
    add_config_option(imp)
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-config", action="store_true", help="use the configuration's extensions: ranges")
    source.add_argument("--csv", metavar="FILE", help="a CSV with extension,category,room,description")
    exp = actions.add_parser("export", help="print the extension table as CSV")
    add_config_option(exp)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    engine = make_engine(config.database.url)
    try:
        with make_sessionmaker(engine).begin() as session:
            if args.action == "export":
                ordered = select(Extension).order_by(func.length(Extension.number), Extension.number)
                sys.stdout.write(rows_to_csv(session.scalars(ordered)))
                return 0
            try:
                rows = rows_from_config(config) if args.from_config else \
                    rows_from_csv(Path(args.csv).read_text(encoding="utf-8-sig"))
            except (OSError, ValueError) as exc:
                print(f"nothing changed: {exc}", file=sys.stderr)
                return 1
            changes = replace_all(session, rows)
            audit.record(session, ACTOR, "extension.import", "extensions",
                         after={**changes, "source": "configuration" if args.from_config else args.csv})
        print("extensions: {total} now ({added} added, {removed} removed, {changed} changed)".format(**changes))
        return 0
    finally:
        engine.dispose()
