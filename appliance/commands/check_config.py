"""``appliance check-config FILE``: every problem with its key path, or a short summary of the links."""

from __future__ import annotations

import argparse

from appliance.config import load_config


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check-config", help="check a configuration file and report every problem")
    parser.add_argument("file", help="the YAML configuration to check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.file)  # ConfigError is printed by the CLI with exit status 2
    print(f"{args.file}: OK")
    print(f"  site: {config.site.name} ({config.site.country}, {config.site.timezone}, {config.site.currency})")
    for link in config.pbx:
        print(f"  pbx {link.name}: {link.driver} {link.describe()}")
    if config.pms:
        print(f"  pms {config.pms.name}: {config.pms.driver} {config.pms.describe()}")
    print(f"  extensions: {len(config.extension_map())}")
    return 0
