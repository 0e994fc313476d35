"""Restoring an archive made by ``appliance.backup``: check it, load it, migrate it, verify it.

Order of work, each step refusing with a clear message rather than leaving a half-restored box:

1. the archive is read and every member checked against the manifest's sha256 (``backup.unpack``);
2. its schema revision must be one this version knows (a newer backup needs newer software first);
3. the database kind must match the target (a SQLite backup goes into a SQLite database);
4. the database is loaded: SQLite through the online backup API *into* the live file (open
   connections, e.g. the web admin's, see the new content instead of a file swapped under them);
   PostgreSQL by dropping the appliance's tables and ``pg_restore``;
5. row counts are compared with the manifest, SQLite's integrity check must pass;
6. migrations bring the schema to this version's head;
7. the configuration file is put back (the old one kept as ``.before-restore``).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.pool import NullPool

from appliance.backup import (
    COUNTED_TABLES,
    BackupError,
    Manifest,
    check_integrity,
    libpq_url,
    pg_tool,
    revision_and_counts,
    run_tool,
    unpack,
)
from appliance.daemonlock import database_kind, sqlite_path
from appliance.db.session import alembic_config, upgrade


@dataclass(frozen=True, kw_only=True)
class RestoreResult:
    manifest: Manifest
    counts: dict[str, int]
    revision_before: str | None
    revision_after: str | None
    config_restored: Path | None


def known_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return {revision.revision for revision in script.walk_revisions()}


def check_revision(manifest: Manifest) -> None:
    revision = manifest.schema_revision
    if revision is not None and revision not in known_revisions():
        raise BackupError(f"the backup is at schema revision {revision}, which this version "
                          f"({_version()}) does not know: it was made by a newer version; install that "
                          f"version (or newer) first, then restore")


def _version() -> str:
    from appliance.backup import app_version

    return app_version()


def restore_backup(archive: Path, url: str, config_path: Path | None) -> RestoreResult:
    """Restore ``archive`` into the database at ``url`` and (unless None) the file ``config_path``.

    The caller decides whether the daemon may be running (see ``appliance.daemonlock``).
    """
    kind = database_kind(url)
    with tempfile.TemporaryDirectory(prefix="appliance-restore-") as work:
        unpacked = unpack(archive, Path(work))
        manifest = unpacked.manifest
        check_revision(manifest)
        if manifest.database != kind:
            raise BackupError(f"the backup holds a {manifest.database} database, the target "
                              f"({_shown(url)}) is {kind}: restore into a {manifest.database} database")
        if kind == "sqlite":
            counts = _restore_sqlite(unpacked.database, url)
        else:
            counts = _restore_postgresql(unpacked.database, url)
        missing = {name: (expected, counts.get(name)) for name, expected in manifest.counts.items()
                   if counts.get(name) != expected}
        if missing:
            detail = ", ".join(f"{name} {got} rows, expected {want}" for name, (want, got) in missing.items())
            raise BackupError(f"the restored database does not match the manifest: {detail}")
        upgrade(url)  # an older backup is migrated to this version's schema, as a start would
        after = _current_revision(url)
        _hand_to_service_user(url)
        restored_config = None
        if config_path is not None and unpacked.config is not None:
            restored_config = _restore_config(unpacked.config, config_path)
    return RestoreResult(manifest=manifest, counts=counts, revision_before=manifest.schema_revision,
                         revision_after=after, config_restored=restored_config)


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _restore_sqlite(source_file: Path, url: str) -> dict[str, int]:
    path = sqlite_path(url)
    if path is None:
        raise BackupError("cannot restore into an in-memory SQLite database")
    path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(source_file)
    try:
        check_integrity(source, "the database in the backup")
        target = sqlite3.connect(path, timeout=30)
        try:
            # The backup API writes through SQLite's own locking and journal: connections that are
            # open on the target see the restored content, and a crash mid-way rolls back.
            source.backup(target, pages=-1)
            check_integrity(target, "the restored database")
            _, counts = revision_and_counts(target)
        finally:
            target.close()
    finally:
        source.close()
    return counts


def _restore_postgresql(dump: Path, url: str) -> dict[str, int]:
    pg_restore = pg_tool("pg_restore")
    target, env = libpq_url(url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            # Drop what is there (whatever its revision) so the dump loads into an empty schema.
            names = inspect(connection).get_table_names()
            if names:
                quote = connection.dialect.identifier_preparer.quote
                connection.execute(text(f"DROP TABLE IF EXISTS {', '.join(quote(n) for n in names)} CASCADE"))
            # Functions the migrations create (0008's trigger function) outlive their tables; the dump
            # creates them again, so they go too: every function of the schema the tables live in.
            for signature in connection.scalars(text(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p "
                    "WHERE p.pronamespace = current_schema()::regnamespace")):
                connection.execute(text(f"DROP FUNCTION IF EXISTS {signature} CASCADE"))
        run_tool([pg_restore, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction",
                   f"--dbname={target}", str(dump)], env, "pg_restore")
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            return {name: int(connection.scalar(text(f'SELECT count(*) FROM "{name}"')))
                    for name in COUNTED_TABLES if name in tables}
    finally:
        engine.dispose()


def _current_revision(url: str) -> str | None:
    from appliance.db.session import current_revision, make_engine

    engine = make_engine(url)
    try:
        return current_revision(engine)
    finally:
        engine.dispose()


def _hand_to_service_user(url: str) -> None:
    """Run as root, the restore (and migrations) may have created files root owns: give the database
    files to the owner of their folder (the service user of the state directory)."""
    path = sqlite_path(url) if database_kind(url) == "sqlite" else None
    if path is None or os.geteuid() != 0:
        return
    folder = path.parent.stat()
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            os.chown(candidate, folder.st_uid, folder.st_gid)


def _restore_config(source: Path, config_path: Path) -> Path:
    """Put the backed-up configuration at ``config_path``; the current one is kept beside it. A link (the
    image links /etc/appliance/appliance.yaml into the state folder) is followed: the file it points at is
    restored, and the link stays."""
    config_path = Path(os.path.realpath(config_path))
    config_path.parent.mkdir(parents=True, exist_ok=True)
    mode, owner = 0o640, None
    if config_path.exists():
        stat = config_path.stat()
        mode, owner = stat.st_mode & 0o777, (stat.st_uid, stat.st_gid)
        os.replace(config_path, config_path.with_name(config_path.name + ".before-restore"))
    partial = config_path.with_name(f".{config_path.name}.restoring")
    partial.write_bytes(source.read_bytes())
    os.chmod(partial, mode)
    if owner is not None and os.geteuid() == 0:
        os.chown(partial, *owner)
    os.replace(partial, config_path)
    return config_path
