"""SQL pieces the two databases spell differently, as SQLAlchemy constructs.

``UtcDateTime`` columns hold naive UTC timestamps on both databases, so "seconds since 1970" is
``strftime('%s', x)`` on SQLite and ``EXTRACT(EPOCH FROM x)`` on PostgreSQL (a ``timestamp without time
zone`` is read as UTC there). Both are cast to a whole number so ``/ 3600`` is integer division.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement


class epoch(FunctionElement[int]):  # noqa: N801 (an SQL function name)
    """``epoch(column)``: whole seconds since 1970-01-01 UTC of a ``UtcDateTime`` column."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch"


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: Any, **kw: Any) -> str:
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) AS BIGINT)"


@compiles(epoch)
def _epoch_default(element: epoch, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"epoch() is not written for {compiler.dialect.name}")


def local_hour(column: ColumnElement[Any], offset_seconds: int) -> ColumnElement[int]:
    """The local clock hour (0-23) of a UTC timestamp column, for a constant UTC offset."""
    # ``//`` (not ``/``): SQLAlchemy 2 renders ``/`` on integers as true division on PostgreSQL.
    return ((epoch(column) + offset_seconds) // 3600) % 24
