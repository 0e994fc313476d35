"""``appliance restore FILE``: put a backup's database and configuration back.

Refuses while the daemon holds the database (stop it first: ``systemctl stop appliance
appliance-web``) unless ``--force``; checks the archive against its manifest and the schema revision
against this version; runs the migrations afterwards. The target is ``--database-url`` or the
database of the configuration in force (``--config``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from appliance.commands.common import add_config_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore", help="restore a backup made by `appliance backup`",
        description="Restore the database and the configuration from an appliance backup archive.")
    parser.add_argument("file", help="the appliance-backup-*.tar.gz archive")
    add_config_option(parser)
    parser.add_argument("--database-url", help="restore into this database instead of the configuration's")
    parser.add_argument("--no-config", action="store_true",
                        help="restore the database only; leave the configuration file as it is")
    parser.add_argument("--force", action="store_true",
                        help="restore even though the daemon is running (it may post from stale state)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from appliance.backup import BackupError, configured_database_url
    from appliance.daemonlock import DaemonLock
    from appliance.restore import restore_backup

    config_path = Path(args.config)
    url = args.database_url or configured_database_url(config_path)
    lock = DaemonLock(url)
    try:
        if not lock.acquire():
            if not args.force:
                print("the daemon is running and holds the database: stop it first "
                      "(systemctl stop appliance appliance-web), or pass --force", file=sys.stderr)
                return 1
            print("warning: the daemon is running; restoring anyway (--force)", file=sys.stderr)
        result = restore_backup(Path(args.file), url, None if args.no_config else config_path)
    except BackupError as exc:
        print(f"restore refused: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        first_line = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0]
        print(f"restore failed: cannot use the database: {type(exc).__name__}: {first_line}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"restore failed: {exc.filename or args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    manifest = result.manifest
    print(f"restored {args.file}: backup of {manifest.created_at} by version {manifest.app_version}")
    print("  rows: " + ", ".join(f"{name} {count}" for name, count in sorted(result.counts.items())))
    if result.revision_before != result.revision_after:
        print(f"  schema migrated from {result.revision_before} to {result.revision_after}")
    else:
        print(f"  schema at {result.revision_after}")
    if result.config_restored:
        print(f"  configuration restored to {result.config_restored} (the previous one: "
              f"{result.config_restored.name}.before-restore)")
    print("start the services again: systemctl start appliance appliance-web")
    return 0
