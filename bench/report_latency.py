"""How long each report takes over many calls (not a test): ``python bench/report_latency.py [--calls N]``.

Seeds N calls (default 2,000,000) over two years into a SQLite file with Core ``executemany`` inserts,
then times every report over the whole range and over one month. The seed bypasses the ORM: rows go
through a copy of the ``calls`` table whose columns have the storage types (naive UTC datetimes, money in
1/10000ths), which is what ``UtcDateTime`` and ``Money`` would bind anyway, only faster.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Column, MetaData, Table, func, select
from sqlalchemy.types import TypeDecorator

from appliance.db.models import Call, Posting
from appliance.db.session import make_engine, make_sessionmaker, upgrade
from appliance.reports import (
    Period, calls_by_hour, cost_by_call_class, cost_by_country, cost_by_department, cost_by_extension,
    cost_by_trunk, frontdesk_daily, trunk_utilisation,
)
from appliance.reports.pdf import to_pdf
from appliance.reports.render import to_csv, to_xlsx

TZ = ZoneInfo("Europe/Berlin")
FIRST = date(2024, 1, 1)
DAYS = 730
BATCH = 50_000
COUNTRIES = ["DE"] * 12 + ["FR", "GB", "US", "IT", "ES", "NL", "CH", "AT", "PL", "+881612345678"]
CLASSES = ["local"] * 5 + ["national"] * 3 + ["mobile"] * 2 + ["international", "premium"]


def raw_table(table: Table) -> Table:
    """``table`` with each decorated column type replaced by what it stores."""
    return Table(table.name, MetaData(), *(
        Column(c.name, c.type.impl if isinstance(c.type, TypeDecorator) else c.type, primary_key=c.primary_key)
        for c in table.columns))


def seed(url: str, calls: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as connection:
        if (connection.scalar(select(func.count()).select_from(Call)) or 0) >= calls:
            return
        connection.exec_driver_sql("PRAGMA synchronous=OFF")
    rng = random.Random(7)
    table, postings = raw_table(Call.__table__), raw_table(Posting.__table__)
    base = datetime.combine(FIRST, datetime.min.time())
    started = time.perf_counter()
    for first in range(0, calls, BATCH):
        rows, posts = [], []
        for n in range(first, min(first + BATCH, calls)):
            start = base + timedelta(seconds=int(n * DAYS * 86400 / calls) + rng.randrange(60))
            direction = rng.choices(("outgoing", "incoming", "internal"), (6, 3, 1))[0]
            extension = str(rng.randrange(100, 1100))
            amount = rng.randrange(0, 200_000) if direction == "outgoing" else 0
            rows.append({"id": n + 1, "link": "pbx", "dedup_key": f"b{n}", "received_at": start, "start": start,
                         "duration": int(rng.expovariate(1 / 180)), "extension": extension,
                         "trunk": f"T{rng.randrange(1, 9)}", "dialled": "", "caller": "", "direction": direction,
                         "answered": True, "account_code": "", "pbx_call_id": "", "transfer": "", "raw": b"",
                         "category": "guest" if int(extension) < 1000 else "admin", "room": extension,
                         "call_class": rng.choice(CLASSES) if direction == "outgoing" else "unknown",
                         "destination": rng.choice(COUNTRIES), "amount": amount, "currency": "EUR",
                         "rating": {}, "disposition": "charge", "reason": "", "ring": None, "stay_id": None,
                         "journal_id": None})
            if amount:
                answered = start + timedelta(seconds=30)
                posts.append({"id": n + 1, "call_id": n + 1, "kind": "charge", "link": "pms", "room": extension,
                              "amount": amount, "currency": "EUR", "destination": "", "state": "ok", "reason": "",
                              "attempts": 1, "created_at": start, "updated_at": answered,
                              "answered_at": answered, "answer_code": "", "answer_text": "", "note": "",
                              "created_by": "daemon"})
        with engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
            connection.execute(table.insert(), rows)
            if posts:
                connection.execute(postings.insert(), posts)
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    print(f"seeded {calls:,} calls in {time.perf_counter() - started:.1f} s")
    engine.dispose()


def timed(label: str, build, *args, **kwargs) -> object:
    started = time.perf_counter()
    result = build(*args, **kwargs)
    print(f"  {label:<28} {time.perf_counter() - started:8.3f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "report_latency.db"))
    args = parser.parse_args()
    url = f"sqlite:///{args.db}"
    seed(url, args.calls)
    sessions = make_sessionmaker(make_engine(url))
    whole = Period.between(FIRST, FIRST + timedelta(days=DAYS - 1), TZ, label="whole range")
    month = Period.month(2025, 3, TZ)
    costs = [("cost by department", cost_by_department), ("cost by extension", cost_by_extension),
             ("cost by trunk", cost_by_trunk), ("cost by call class", cost_by_call_class),
             ("cost by country", cost_by_country), ("calls by hour", calls_by_hour)]
    for period in (whole, month):
        print(f"{period.label} ({args.calls:,} calls in the database):")
        with sessions() as session:
            reports = [timed(label, build, session, period) for label, build in costs]
            reports.append(timed("trunk utilisation", trunk_utilisation, session, period, trunk_count=30, by="day"))
            timed("front desk day", frontdesk_daily, session, month.start.date(), TZ)
        if period is month:
            timed("render CSV", to_csv, reports)
            timed("render Excel", to_xlsx, reports)
            timed("render PDF", to_pdf, reports)


if __name__ == "__main__":
    main()
