"""Alembic environment: run by ``appliance db upgrade`` and by the tests; the URL comes from the caller."""

from __future__ import annotations

from alembic import context
from sqlalchemy import event

from appliance.db.models import Base
from appliance.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    if engine.dialect.name == "sqlite":
        _transactional_ddl(engine)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _transactional_ddl(engine) -> None:
    """pysqlite sends no BEGIN before DDL, so each CREATE TABLE committed on its own and an upgrade killed
    half-way left tables without the revision stamp ("table ... already exists" on the next run). With
    the driver's own transaction handling off and BEGIN sent by SQLAlchemy (its pysqlite recipe), the whole
    upgrade is one SQLite transaction: a kill leaves the schema as it was."""

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
