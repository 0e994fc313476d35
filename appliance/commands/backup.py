"""``appliance backup [--to DIR] [--keep N]``: one archive of the database and the configuration.

Safe while the daemon runs (see ``appliance.backup``). The nightly ``appliance-backup.timer`` runs it
with ``--keep 14``; a technician runs it before an upgrade or a risky change.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from appliance.commands.common import add_config_option

DEFAULT_BACKUP_DIR = "/var/lib/appliance/backups"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backup", help="back up the database and the configuration (safe while running)",
        description="Write appliance-backup-<time>.tar.gz with the database, the configuration and a "
                    "manifest (schema revision, version, sha256 of each part).")
    add_config_option(parser)
    parser.add_argument("--to", default=DEFAULT_BACKUP_DIR, metavar="DIR",
                        help=f"folder for the archive (default {DEFAULT_BACKUP_DIR})")
    parser.add_argument("--keep", type=int, metavar="N",
                        help="then delete all but the newest N archives in that folder")
    parser.add_argument("--database-url", help="back up this database instead of the configuration's")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.backup import BackupError, configured_database_url, create_backup, list_backups

    config_path = Path(args.config)
    url = args.database_url or configured_database_url(config_path)
    if args.keep is not None and args.keep < 1:
        print("--keep must be at least 1", file=sys.stderr)
        return 2
    dest = Path(args.to)
    before = set(list_backups(dest))
    try:
        archive = create_backup(url, config_path, dest, keep=args.keep)
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        first_line = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        print(f"backup failed: cannot use the database: {type(exc).__name__}: {first_line}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"backup failed: {exc.filename or dest}: {exc.strerror}", file=sys.stderr)
        return 1
    size = archive.stat().st_size
    print(f"{archive} ({size / 1024:.0f} KiB)")
    deleted = sorted(before - set(list_backups(dest)))
    for path in deleted:
        print(f"deleted old backup {path.name}")
    return 0
