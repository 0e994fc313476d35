"""The ``appliance`` command: one subcommand per module in ``appliance.commands``.

Each command module exposes ``add_parser(subparsers)``, which registers its parser and sets
``func=run``; ``run(args) -> int`` returns the exit status. Errors a user can fix (``ConfigError``)
print as plain messages, never as tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from appliance.errors import ConfigError

COMMANDS = (
    "run", "web", "demo", "parse", "simulate", "db", "user", "check_config", "rate", "rerate",
    "backup", "restore", "status", "pms", "extensions",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appliance", description="Hotel PBX call records to PMS postings.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"appliance.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
