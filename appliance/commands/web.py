"""``appliance web [--config FILE]``: serve the web admin on ``web.host:web.port``.

A process of its own, apart from the daemon (``appliance run``): a crash here never stops posting. It
refuses to start on a database that is not at the latest migration, because the screens would fail on
missing columns; ``appliance db upgrade`` fixes that.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from appliance.config import DEFAULT_CONFIG_PATH, ApplianceConfig, load_config
from appliance.db.session import current_revision, head_revision, make_engine

LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "web", help="serve the web admin",
        description="Serve the web admin on web.host:web.port from the configuration file.")
    parser.add_argument("--config", default=DEFAULT_CONFIG_PATH, metavar="FILE",
                        help=f"the appliance configuration (default {DEFAULT_CONFIG_PATH})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)  # a ConfigError goes up to the CLI, which prints it
    from twisted.internet import reactor

    return serve(config, reactor)


def database_problem(url: str) -> str | None:
    """Why the web admin cannot use the database at ``url``, or None when it is at the migration head."""
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        # The message of a driver error can hold the URL; name the kind of failure and the first line.
        first_line = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        return f"cannot open the database: {type(exc).__name__}: {first_line}"
    finally:
        engine.dispose()
    head = head_revision()
    if current != head:
        at = f"revision {current}" if current else "no revision (an empty or new database)"
        return f"the database is at {at}, the web admin needs {head}: run `appliance db upgrade` first"
    return None


def serve(config: ApplianceConfig, reactor: Any) -> int:
    """Check the database, then serve until the reactor stops. Returns the exit status."""
    problem = database_problem(config.database.url)
    if problem:
        print(problem, file=sys.stderr)
        return 1

    from twisted.internet.error import CannotListenError
    from twisted.logger import Logger

    from appliance.net.web_server import make_web_service
    from webadmin import create_app

    _start_logging(config.log_level)
    log = Logger(namespace="appliance.web")
    app = create_app(config=config)
    host, port = config.web.host, config.web.port
    service = make_web_service(app, host, port, reactor)
    try:
        service.startService()
    except CannotListenError as exc:
        print(f"cannot listen on {host}:{port}: {exc.socketError}", file=sys.stderr)
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    shown_host = f"[{host}]" if ":" in host else host
    log.info("web admin listening on {url}", url=f"http://{shown_host}:{service.port.getHost().port}/")
    reactor.run()
    return 0


def _start_logging(level: str) -> None:
    """Twisted's events and Flask's (stdlib) records both end up on stderr, one format, one level."""
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    logging.basicConfig(level=LOG_LEVELS.get(level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    observer: Any = STDLibLogObserver()  # provides ILogObserver (a zope interface mypy cannot see)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
