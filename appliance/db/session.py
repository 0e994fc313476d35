"""Engines, sessions and migrations. No Twisted here: the daemon calls these from its DB thread.

SQLite runs in WAL mode with ``synchronous=FULL``: a record the journal has committed survives a power
cut, not only a killed process. PostgreSQL is used as configured by its URL.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _ensure_sqlite_folder(url: str) -> None:
    path = url.split(":///", 1)[-1] if ":///" in url else ""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


# The daemon and the web admin only need "is the schema current?"; answering it without importing alembic
# keeps about 10 MB out of their resident memory. tests/db/test_migrations.py checks both against alembic.
_REVISION = re.compile(r'^(down_)?revision\s*(?::[^=]*)?=\s*["\']?([\w-]+|None)["\']?', re.MULTILINE)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def head_revision() -> str | None:
    """The revision no other migration builds on (the migrations are one line, as alembic's head)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((bool(down), value) for down, value in _REVISION.findall(path.read_text(encoding="utf-8")))
        if False in found:
            revisions.add(found[False])
            if found.get(True, "None") != "None":
                parents.add(found[True])
    heads = revisions - parents
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have more than one head: {sorted(heads)}")
    return heads.pop() if heads else None


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


def integrity_problem(engine: Engine) -> str | None:
    """SQLite's ``PRAGMA quick_check`` (every page and index entry, O(size): about 8 s for 2,000,000 calls),
    or None when it says ok. Run at daemon start: on a damaged file the daemon would otherwise report
    ready and then fail every write while nothing posts. PostgreSQL checks its own pages; None."""
    if engine.dialect.name != "sqlite":
        return None
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as connection:
            rows = [row[0] for row in connection.exec_driver_sql("PRAGMA quick_check").fetchmany(5)]
    except DBAPIError as exc:
        return str(exc.orig)[:300]
    return None if rows == ["ok"] else "; ".join(rows)[:300]
