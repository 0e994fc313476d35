"""``appliance run``: the daemon (PBX links, pipeline, PMS link). Refuses to start on a bad config."""

from __future__ import annotations

import argparse

from appliance.commands.common import add_config_option, load, run_service, start_logging


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the daemon")
    add_config_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    from twisted.internet import reactor

    from appliance.app import make_daemon

    start_logging(config.log_level)
    daemon = make_daemon(config, reactor)
    run_service(daemon.service, reactor)
    return 0
