"""``appliance pms resync``: ask the PMS for its guest database (FIAS DR/DS/DE) — an administrator's action.

Oracle FIAS 2.20.23 §4 (p.36-38, fias.md §4): a resync is requested only after data loss (a new install,
a wiped disk) or by an administrator, never periodically and never on every start. This command only
sets ``PmsCounter.resync_wanted`` for the configured PMS link; the running daemon notices it within a
few seconds (its periodic wake) and sends DR as soon as no posting awaits its answer, or at the link's
next start if it is down. Postings wait while the resync runs (DS ... DE).
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from appliance.commands.common import add_config_option

    parser = subparsers.add_parser("pms", help="PMS link actions (resync)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="resync")
    resync = actions.add_parser("resync", help="ask the PMS for its guest database at the next chance")
    add_config_option(resync)
    resync.add_argument("--database-url", help="use this database instead of the configuration's")
    resync.add_argument("--user", default="cli", help="who asked (kept in the audit log)")
    resync.set_defaults(func=run_resync)


def request_resync(sessions: object, link: str, user: str, now: datetime) -> bool:
    """Set the flag (creating the link's counter if needed); True if it was not set already."""
    from appliance.db.models import AuditEntry, PmsCounter

    with sessions.begin() as session:  # type: ignore[attr-defined]
        counter = session.get(PmsCounter, link)
        if counter is None:
            counter = PmsCounter(link=link, next_sequence=1, resync_wanted=False)
            session.add(counter)
        already = bool(counter.resync_wanted)
        counter.resync_wanted = True
        session.add(AuditEntry(at=now, username=user, action="pms.resync", target=link,
                               before={"resync_wanted": already}, after={"resync_wanted": True},
                               detail="guest database resync requested"))
        return not already


def run_resync(args: argparse.Namespace) -> int:
    from appliance.config import load_config
    from appliance.db.session import is_up_to_date, make_engine, make_sessionmaker

    config = load_config(args.config)
    if config.pms is None:
        print("the configuration has no pms link")
        return 2
    from appliance.registry import default_registry

    link = default_registry().get("pms", config.pms.driver).make_link(config.driver_options[config.pms.name])
    if not getattr(link, "supports_resync", True):
        print(f"PMS link {config.pms.name} ({config.pms.driver}) carries no guest records: nothing to resync")
        return 2
    engine = make_engine(args.database_url or config.database.url)
    try:
        if not is_up_to_date(engine):
            print("the database schema is not current: run `appliance db upgrade`")
            return 2
        fresh = request_resync(make_sessionmaker(engine), config.pms.name, args.user, datetime.now(timezone.utc))
    finally:
        engine.dispose()
    print(f"resync requested for PMS link {config.pms.name}"
          + ("" if fresh else " (it was already requested)")
          + "; the daemon sends DR when the link is idle")
    return 0
