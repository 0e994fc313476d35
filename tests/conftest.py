"""Shared fixtures. Database tests take ``db_url`` and run on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (user postgres, trust auth, database ``test``); each test gets
a database of its own, dropped afterwards. Without a server the PostgreSQL cases skip, except under
``CI=true`` where a missing server fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("APPLIANCE_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _pg_available() -> str:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return ""
    except Exception as exc:  # any driver or network failure means "not available"
        return f"{type(exc).__name__}: {exc}".splitlines()[0]


_PG_PROBLEM: str | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'appliance.db'}"
        return
    global _PG_PROBLEM
    if _PG_PROBLEM is None:
        _PG_PROBLEM = _pg_available()
    if _PG_PROBLEM:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required under CI: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL not available: {_PG_PROBLEM}")
    name = f"appliance_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def migrated_url(db_url: str) -> str:
    from appliance.db.session import upgrade

    upgrade(db_url)
    return db_url
