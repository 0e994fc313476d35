"""Column types that behave the same on SQLite and PostgreSQL.

- ``UtcDateTime``: timezone-aware ``datetime`` in Python, stored as UTC. SQLite keeps no zone, so the
  zone is stripped on the way in and UTC attached on the way out; naive datetimes are refused.
- ``Money``: ``Decimal`` in Python, stored as an integer count of 1/10000 of the currency unit, so sums
  in SQL are exact on both databases (SQLite has no decimal type) and 3-decimal currencies fit.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer
from sqlalchemy.types import TypeDecorator

MONEY_SCALE = Decimal("10000")

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the database stores aware times only")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Money(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Any) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value) * MONEY_SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"amount {value} has more than 4 decimal places")
        return int(scaled)

    def process_result_value(self, value: int | None, dialect: Any) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) / MONEY_SCALE).quantize(Decimal("0.0001"))
