"""Helpers shared by the subcommands: the --config option, logging set-up, running the reactor."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.config import DEFAULT_CONFIG_PATH, ApplianceConfig, load_config


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH,
                        help=f"the appliance configuration (default {DEFAULT_CONFIG_PATH})")


def load(args: argparse.Namespace) -> ApplianceConfig:
    return load_config(args.config)


LEVELS = {"debug": "debug", "info": "info", "warn": "warn", "error": "error"}


def start_logging(level: str = "info", stream: Any = None) -> None:
    """Plain, one-line log events on stdout (journald adds the time and unit)."""
    from twisted.logger import (
        FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner, textFileLogObserver,
    )

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(LEVELS[level]))
    observer = FilteringLogObserver(textFileLogObserver(stream or sys.stdout), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def run_service(service: Any, reactor: Any) -> None:
    """Start a service on the global reactor, stop it cleanly on SIGTERM/SIGINT."""
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
