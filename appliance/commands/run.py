"""``appliance run``: the daemon (PBX links, pipeline, PMS link). Refuses to start on a bad config.

Under systemd (``Type=notify``, see ``systemd/appliance.service``) it reports ``READY=1`` once its
links are being served and pings the watchdog while they are; elsewhere the notifications are no-ops.
It holds the database's daemon lock for its whole life, so a second daemon on the same database is
refused and ``appliance restore`` knows not to overwrite a database in use.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from appliance.commands.common import add_config_option, load, run_service, start_logging


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run the daemon")
    add_config_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args)
    from twisted.internet import reactor

    from appliance.app import make_daemon
    from appliance.daemonlock import DaemonLock
    from appliance.net.watchdog import Notifier, WatchdogService, watchdog_interval

    start_logging(config.log_level)
    lock = DaemonLock(config.database.url, create=True)
    if not lock.acquire():
        print("another `appliance run` already holds this database: two daemons would post every call "
              "twice; stop the other one first", file=sys.stderr)
        return 1
    try:
        daemon = make_daemon(config, reactor)
        # A child of the daemon's root service: started after the links' startup, stopped with them.
        watchdog = WatchdogService(Notifier.from_environment(), lambda: healthy(daemon), reactor,
                                   watchdog_interval(), status=lambda: describe(daemon))
        watchdog.setServiceParent(daemon.service)
        run_service(daemon.service, reactor)
    finally:
        lock.release()
    return 0


def healthy(daemon: Any) -> bool:
    """True while the daemon serves its links: the root service and every link service are running.

    The links start only after journal recovery, so this is also "start-up has finished": READY=1
    waits for it. A link that is merely disconnected still counts (its service keeps reconnecting);
    a reactor that hangs stops calling this at all, and the missing pings make systemd restart us.
    """
    links = [*daemon.pbx, *([daemon.pms] if daemon.pms is not None else [])]
    return bool(daemon.service.running) and all(link.running for link in links)


def describe(daemon: Any) -> str:
    """The STATUS= line ``systemctl status appliance`` shows."""
    records = sum(link.records_received for link in daemon.pbx)
    pms = daemon.pms.link.name if daemon.pms is not None else "none"
    return f"{len(daemon.pbx)} PBX link(s), PMS link {pms}; {records} record(s) received since start"
