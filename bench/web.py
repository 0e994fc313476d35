"""The web admin's figures from issue 6: with 2,000,000 calls in the database, how long the first page
of a filtered call report takes (p50 / p95 over repeated requests), and the web process's memory while
it streams a CSV export of 1,000,000 rows.

    .venv/bin/python bench/web.py [--calls 2000000] [--export-rows 1000000] [--runs 20] [--database-url URL]

The web admin runs in its own process behind the real Twisted server; times are measured from this
process over HTTP (request to last byte). Without ``--database-url`` a SQLite file in a temporary folder
is filled first (``--keep`` keeps it). The export covers the most recent calls up to ``--export-rows``
(a date filter chosen from the data), so the two figures can share one database.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _seed import END, seed
from export_memory import WebProcess, export, report


def filters() -> list[tuple[str, str]]:
    """(what, query string) for the report's first page; the seeded data ends at ``_seed.END``."""
    day = END.date()
    month = day - timedelta(days=30)
    return [
        ("one day", f"start={day}&end={day}"),
        ("last 7 days (the default)", f"start={day - timedelta(days=6)}&end={day}"),
        ("one month", f"start={month}&end={day}"),
        ("one month, failed only", f"start={month}&end={day}&state=failed"),
        ("one month, called number contains 4420", f"start={month}&end={day}&called=4420"),
        ("one month, sorted by amount", f"start={month}&end={day}&sort=amount&order=desc"),
        ("one room, all time", "start=&end=&room=112"),
        ("one extension, one year", f"start={day - timedelta(days=365)}&end={day}&extension=2112"),
        ("billing account, one month", f"start={month}&end={day}&account=ACME"),
        ("call ID", "call_id=123456"),
        ("everything, all time (worst case)", "start=&end="),
    ]


def time_pages(web: WebProcess, runs: int) -> None:
    print(f"first page of the call report, {runs} runs each (after 2 warm-up requests):")
    print(f"  {'filter':42} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for what, query in filters():
        samples = []
        for i in range(runs + 2):
            started = time.perf_counter()
            status, _ = web.get(f"/report/?{query}")
            assert status == 200, (what, status)
            if i >= 2:
                samples.append((time.perf_counter() - started) * 1000)
        samples.sort()
        p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
        print(f"  {what:42} {statistics.median(samples):8.0f} {p95:8.0f} {samples[-1]:8.0f}", flush=True)


def export_query(url: str, rows: int) -> str:
    """A date filter holding about ``rows`` calls: the most recent days of the seeded data."""
    from sqlalchemy import func, select

    from appliance.db.models import Call
    from appliance.db.session import make_engine

    engine = make_engine(url)
    with engine.connect() as connection:
        total = connection.scalar(select(func.count()).select_from(Call)) or 0
        if rows >= total:
            return "start=&end="
        boundary = connection.scalar(select(Call.start).order_by(Call.start.desc()).offset(rows).limit(1))
    engine.dispose()
    # From the day of the row ``rows`` back: at least ``rows`` calls (the rest of that day too).
    return f"start={boundary.date()}&end=" if boundary else "start=&end="


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2_000_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-web-')}/appliance.db"
    print(f"database: {url}")
    seed(url, args.calls)
    web = WebProcess(url)
    try:
        time_pages(web, args.runs)
        query = export_query(url, args.export_rows)
        print(f"CSV export of the calls from {query}:")
        report([export(web, "csv", query)])
    finally:
        web.close()
    if not args.keep and not args.database_url:
        db_file = Path(url.split(":///", 1)[1])
        for path in db_file.parent.iterdir():
            path.unlink()
        db_file.parent.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
