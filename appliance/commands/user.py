"""``appliance user``: manage web admin accounts from the shell (the way in before any admin exists).

    appliance user add USERNAME --role ROLE [--password-stdin] [--no-change-required]
    appliance user passwd USERNAME [--password-stdin] [--no-change-required]
    appliance user list
    appliance user unlock USERNAME

Each takes ``--config FILE`` (default ``appliance.config.DEFAULT_CONFIG_PATH``) or ``--database-url URL``.
A password is read twice with ``getpass``, or once from the first line of standard input with
``--password-stdin`` (for scripts; it never appears in the process list). A password set here is
temporary: its owner must choose a new one at the next sign-in unless ``--no-change-required``.
``passwd`` also lifts a lockout. Changes are written to the audit log as user ``cli``.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.config import DEFAULT_CONFIG_PATH, load_config
from appliance.db.models import User
from appliance.db.session import make_engine, make_sessionmaker

ACTOR = "cli"
ROLES = ("viewer", "frontdesk", "admin")  # the same as webadmin.auth.ROLES (checked by a test)
USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class UserCommandError(Exception):
    """A problem the operator can fix; printed without a traceback."""


def add_parser(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=DEFAULT_CONFIG_PATH, metavar="FILE",
                        help=f"the appliance configuration (default {DEFAULT_CONFIG_PATH})")
    common.add_argument("--database-url", metavar="URL",
                        help="use this database instead of database.url from the configuration")
    password = argparse.ArgumentParser(add_help=False)
    password.add_argument("--password-stdin", action="store_true",
                          help="read the password from the first line of standard input")
    password.add_argument("--no-change-required", action="store_true",
                          help="do not make the user choose a new password at the next sign-in")

    parser = subparsers.add_parser("user", help="manage web admin users",
                                   description="Add web admin users, set passwords, list and unlock them.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common, password], help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=ROLES, help="viewer, frontdesk or admin")
    passwd = actions.add_parser("passwd", parents=[common, password], help="set a user's password")
    passwd.add_argument("username")
    actions.add_parser("list", parents=[common], help="list the users")
    unlock = actions.add_parser("unlock", parents=[common], help="lift a lockout after failed sign-ins")
    unlock.add_argument("username")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    actions = {"add": _add, "passwd": _passwd, "list": _list, "unlock": _unlock}
    url = args.database_url or load_config(args.config).database.url
    from appliance.commands.web import database_problem

    problem = database_problem(url)
    if problem:
        print(problem, file=sys.stderr)
        return 1
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return actions[args.action](session, args)
    except UserCommandError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        engine.dispose()


def _add(session: Session, args: argparse.Namespace) -> int:
    from appliance import audit
    from webadmin.auth import hash_password

    username = args.username
    if not USERNAME.fullmatch(username):
        raise UserCommandError("a username is 1-64 letters, digits or '_', '.', '@', '-'")
    if _find(session, username) is not None:
        raise UserCommandError(f"user {username!r} already exists; use `appliance user passwd` to reset it")
    password = _read_password(args, username)
    at = datetime.now(timezone.utc)
    must_change = not args.no_change_required
    session.add(User(username=username, password_hash=hash_password(password), role=args.role,
                     must_change_password=must_change, failed_logins=0, active=True, created_at=at))
    audit.record(session, ACTOR, "user.add", f"user:{username}",
                 after={"role": args.role, "must_change_password": must_change}, at=at)
    try:
        session.commit()
    except IntegrityError:
        raise UserCommandError(f"user {username!r} already exists") from None
    note = "; a new password is required at first sign-in" if must_change else ""
    print(f"added {username} ({args.role}){note}")
    return 0


def _passwd(session: Session, args: argparse.Namespace) -> int:
    from appliance import audit
    from webadmin.auth import hash_password

    user = _get(session, args.username)
    password = _read_password(args, user.username)
    at = datetime.now(timezone.utc)
    before = _lock_state(user)
    user.password_hash = hash_password(password)  # also ends the user's open sessions (webadmin.auth)
    user.must_change_password = not args.no_change_required
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, ACTOR, "password.reset", f"user:{user.username}", before=before,
                 after={**_lock_state(user), "must_change_password": user.must_change_password}, at=at)
    session.commit()
    print(f"password set for {user.username}")
    return 0


def _list(session: Session, args: argparse.Namespace) -> int:
    at = datetime.now(timezone.utc)
    users = session.scalars(select(User).order_by(User.username)).all()
    rows = [("USERNAME", "ROLE", "ACTIVE", "MUST CHANGE", "LOCKED UNTIL", "LAST SIGN-IN")]
    for user in users:
        locked = user.locked_until is not None and user.locked_until > at
        rows.append((
            user.username, user.role, "yes" if user.active else "no",
            "yes" if user.must_change_password else "no",
            _utc(user.locked_until) if locked else "-",
            _utc(user.last_login_at) if user.last_login_at else "never",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _unlock(session: Session, args: argparse.Namespace) -> int:
    from appliance import audit

    user = _get(session, args.username)
    before = _lock_state(user)
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, ACTOR, "account.unlock", f"user:{user.username}", before=before,
                 after=_lock_state(user))
    session.commit()
    print(f"unlocked {user.username}")
    return 0


def _find(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def _get(session: Session, username: str) -> User:
    user = _find(session, username)
    if user is None:
        raise UserCommandError(f"no user named {username!r} (see `appliance user list`)")
    return user


def _lock_state(user: User) -> dict[str, Any]:
    return {"failed_logins": user.failed_logins,
            "locked_until": user.locked_until.isoformat() if user.locked_until else None}


def _read_password(args: argparse.Namespace, username: str) -> str:
    from webadmin.auth import password_problem

    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UserCommandError("--password-stdin: standard input is empty")
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass(f"New password for {username}: ")
        if getpass.getpass("The same password again: ") != password:
            raise UserCommandError("the two passwords differ; nothing changed")
    problem = password_problem(username, password)
    if problem:
        raise UserCommandError(problem)
    return password


def _utc(value: datetime | None) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if value else ""
