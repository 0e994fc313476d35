"""``appliance status``: one screen for a technician at the console.

Is the configuration valid, is the database at this version's schema, is the daemon running, what does
each link look like (the ``link_status`` table the daemon keeps), when did the last record arrive, how
many postings are in which state and how many wait, how much disk is free, when was the last backup,
and whether the first-boot setup is still open, with its one-time setup code (``appliance.firstboot``):
the console is where the installer reads it.
Exit status 0 when the configuration and the database are fine, 1 otherwise. ``--json`` for scripts.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from appliance.commands.common import add_config_option

WAITING_STATES = ("open", "retry")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="show the appliance's health for a technician")
    add_config_option(parser)
    parser.add_argument("--database-url", help="look at this database instead of the configuration's")
    parser.add_argument("--backups", default="/var/lib/appliance/backups", metavar="DIR",
                        help="where the nightly backups are (default /var/lib/appliance/backups)")
    parser.add_argument("--state-dir", default="/var/lib/appliance", metavar="DIR",
                        help="the first-boot setup state (default /var/lib/appliance)")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    facts = gather(Path(args.config), args.database_url, Path(args.backups), state_dir=Path(args.state_dir))
    if args.json:
        print(json.dumps(facts, indent=2, default=str))
    else:
        print(render(facts))
    return 0 if facts["ok"] else 1


def gather(config_path: Path, database_url: str | None, backups: Path,
           now: datetime | None = None, *, state_dir: Path | None = None) -> dict[str, Any]:
    """Everything ``status`` shows, as plain data (times as aware datetimes)."""
    from appliance.backup import configured_database_url
    from appliance.config import load_config
    from appliance.errors import ConfigError

    now = now or datetime.now(timezone.utc)
    facts: dict[str, Any] = {"now": now, "config_path": str(config_path)}
    try:
        config = load_config(config_path)
        facts["config"] = {"ok": True, "site": config.site.name, "pbx": [link.name for link in config.pbx],
                           "pms": config.pms.name if config.pms else None}
    except ConfigError as exc:
        facts["config"] = {"ok": False, "problems": exc.render().splitlines()}
    url = database_url or configured_database_url(config_path)
    facts["database"] = _database(url, now)
    facts["disk"] = _disk(url)
    facts["backups"] = _backups(backups)
    if state_dir is not None and state_dir.is_dir():
        facts["setup"] = _setup(state_dir)
    facts["ok"] = bool(facts["config"]["ok"] and facts["database"].get("current"))
    return facts


def _database(url: str, now: datetime) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from appliance.daemonlock import daemon_running, sqlite_path
    from appliance.db.models import Call, JournalEntry, LinkStatus, Posting
    from appliance.db.session import current_revision, head_revision, make_engine, make_sessionmaker

    out: dict[str, Any] = {"url": make_url(url).render_as_string(hide_password=True)}
    path = sqlite_path(url) if url.startswith("sqlite") else None
    if path is not None and not path.exists():
        out["error"] = f"no database file at {path} (the daemon creates it on its first start)"
        return out
    engine = make_engine(url)
    try:
        out["revision"], out["head"] = current_revision(engine), head_revision()
        out["current"] = out["revision"] == out["head"]
        out["daemon_running"] = daemon_running(url)
        if not out["current"]:
            return out
        with make_sessionmaker(engine)() as session:
            out["links"] = [
                {"name": s.name, "kind": s.kind, "state": s.state, "since": s.since, "detail": s.detail,
                 "last_record_at": s.last_record_at, "last_answer_at": s.last_answer_at}
                for s in session.scalars(select(LinkStatus).order_by(LinkStatus.kind, LinkStatus.name))]
            out["last_record_at"] = session.scalar(select(func.max(JournalEntry.received_at)))
            out["calls"] = session.scalar(select(func.count()).select_from(Call))
            out["calls_24h"] = session.scalar(select(func.count()).select_from(Call)
                                              .where(Call.received_at >= now - timedelta(hours=24)))
            out["postings"] = dict(session.execute(
                select(Posting.state, func.count()).group_by(Posting.state).order_by(Posting.state)).all())
            out["queue"] = sum(out["postings"].get(state, 0) for state in WAITING_STATES)
            out["unprocessed_journal"] = session.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.processed.is_(False)))
    except SQLAlchemyError as exc:
        first_line = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        out["error"] = f"cannot read the database: {type(exc).__name__}: {first_line}"
        out["current"] = False
    finally:
        engine.dispose()
    return out


def _setup(folder: Path) -> dict[str, Any]:
    from appliance.firstboot import SetupState, format_code

    state = SetupState(folder)
    if state.completed():
        done = state.completion() or {}
        return {"complete": True, "completed_at": done.get("completed_at"), "admin": done.get("admin")}
    try:
        code = state.current_code()
    except OSError:  # not readable by this user: root or the appliance user can read it
        code = None
    return {"complete": False, "code": format_code(code) if code else None}


def _disk(url: str) -> dict[str, Any]:
    from appliance.daemonlock import sqlite_path

    path = sqlite_path(url) if url.startswith("sqlite") else None
    folder = path.parent if path is not None else Path("/var/lib/appliance")
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return {"path": str(folder), "free": usage.free, "total": usage.total}


def _backups(folder: Path) -> dict[str, Any]:
    from appliance.backup import list_backups

    archives = list_backups(folder)
    last = archives[-1] if archives else None
    return {"folder": str(folder), "count": len(archives), "last": last.name if last else None,
            "last_at": datetime.fromtimestamp(last.stat().st_mtime, tz=timezone.utc) if last else None}


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        text = f"{seconds} s ago"
    elif seconds < 7200:
        text = f"{seconds // 60} min ago"
    elif seconds < 172800:
        text = f"{seconds // 3600} h ago"
    else:
        text = f"{seconds // 86400} days ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({text})"


def render(facts: dict[str, Any]) -> str:
    now = facts["now"]
    lines = []
    config = facts["config"]
    if config["ok"]:
        links = ", ".join(config["pbx"]) or "none"
        lines.append(f"configuration  OK  {facts['config_path']}: site {config['site']!r}, "
                     f"PBX links: {links}, PMS: {config['pms'] or 'none'}")
    else:
        lines.append(f"configuration  PROBLEM  {facts['config_path']}")
        lines += [f"    {line}" for line in config["problems"]]
    db = facts["database"]
    if "error" in db:
        lines.append(f"database       PROBLEM  {db['url']}: {db['error']}")
    elif not db["current"]:
        lines.append(f"database       PROBLEM  {db['url']}: revision {db['revision']}, this version needs "
                     f"{db['head']}: run `appliance db upgrade`")
    else:
        lines.append(f"database       OK  {db['url']} (revision {db['revision']})")
    if "daemon_running" in db:
        lines.append(f"daemon         {'running' if db['daemon_running'] else 'NOT running'}")
    if db.get("current") and "links" in db:
        lines.append("links")
        for link in db["links"] or []:
            lines.append(f"    {link['kind']:<4} {link['name']:<16} {link['state']:<10} since "
                         f"{_ago(link['since'], now)}  {link['detail']}")
        if not db["links"]:
            lines.append("    (none reported yet)")
        lines.append(f"last record    {_ago(db['last_record_at'], now)}")
        lines.append(f"calls          {db['calls']} ({db['calls_24h']} in the last 24 h)")
        states = ", ".join(f"{state} {count}" for state, count in db["postings"].items()) or "none"
        lines.append(f"postings       {states}")
        lines.append(f"queue          {db['queue']} posting(s) waiting to be sent; "
                     f"{db['unprocessed_journal']} record(s) not yet processed")
    setup = facts.get("setup")
    if setup is not None and setup["complete"]:
        lines.append(f"first boot     setup complete {setup['completed_at'] or ''} (admin {setup['admin'] or '?'})")
    elif setup is not None:
        code = setup["code"] or "(run as root to see it)"
        lines.append(f"first boot     SETUP OPEN: browse to the web admin and type the setup code {code}")
    disk = facts["disk"]
    percent = 100 * disk["free"] / disk["total"] if disk["total"] else 0
    lines.append(f"disk free      {disk['free'] / 2**30:.1f} GiB of {disk['total'] / 2**30:.1f} GiB "
                 f"({percent:.0f}%) on {disk['path']}")
    backups = facts["backups"]
    if backups["last"]:
        lines.append(f"last backup    {backups['last']} ({_ago(backups['last_at'], now)}), "
                     f"{backups['count']} kept in {backups['folder']}")
    else:
        lines.append(f"last backup    none in {backups['folder']}")
    return "\n".join(lines)
